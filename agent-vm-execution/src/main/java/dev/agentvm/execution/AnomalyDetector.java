package dev.agentvm.execution;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Objects;

/**
 * Spots executions out of the ordinary. Two kinds of checks:
 *
 * <ul>
 *   <li>z-scores over rolling windows of past executions: run time, peak guest memory and peak
 *       guest load; an execution more than {@code zThreshold} standard deviations above the mean
 *       (once the window holds {@code minSamples}), and by at least a minimum difference, is
 *       flagged after it ends;
 *   <li>rules checked while it runs: more processes than {@code maxProcesses}, output faster than
 *       {@code maxOutputBytesPerSecond}; and at submission: more than {@code
 *       maxExecutionsPerMinute}.
 * </ul>
 *
 * Numbers the guest reports (memory, load, processes, its own run time) are the guest's word: a
 * negative or non-finite one is an anomaly of its own ({@code guest-report}, with the z-score
 * response) and never joins a window, where one {@code +Infinity} would make every later z-score
 * meaningless.
 *
 * <p>Each check's {@link Response} is configurable: log it, kill the execution, or quarantine the
 * VM (kept paused for inspection instead of destroyed). Thread-safe; time comes in as a parameter.
 *
 * <pre>{@code
 * AnomalyDetector d = AnomalyDetector.builder().maxProcesses(200, Response.KILL_EXECUTION).build();
 * }</pre>
 */
public final class AnomalyDetector {
  /** What to do about an anomaly. */
  public enum Response {
    /** Log it, audit it and count it. */
    LOG,
    /** Also stop the execution (when it is still running). */
    KILL_EXECUTION,
    /** Also keep its VM paused for inspection rather than destroying it. */
    QUARANTINE_VM
  }

  /**
   * What the guest looked like at one moment of an execution.
   *
   * @param memUsedKiB guest memory in use
   * @param load1 guest 1-minute load average
   * @param processCount processes in the guest
   * @param outputBytes stdout + stderr bytes so far
   * @param elapsed since the command started
   */
  public record Sample(
      long memUsedKiB, double load1, int processCount, long outputBytes, Duration elapsed) {}

  private final int window;
  private final int minSamples;
  private final double zThreshold;
  private final Response zResponse;
  private final double minDurationDeltaMillis;
  private final double minMemoryDeltaKiB;
  private final double minLoadDelta;
  private final int maxProcesses;
  private final Response processResponse;
  private final long maxOutputBytesPerSecond;
  private final Response outputResponse;
  private final int maxExecutionsPerMinute;
  private final Response rateResponse;
  private final RollingStats durations;
  private final RollingStats memory;
  private final RollingStats load;
  private final Deque<Long> submissions = new ArrayDeque<>();

  private AnomalyDetector(Builder b) {
    window = b.window;
    minSamples = b.minSamples;
    zThreshold = b.zThreshold;
    zResponse = b.zResponse;
    minDurationDeltaMillis = b.minDurationDelta.toMillis();
    minMemoryDeltaKiB = b.minMemoryDeltaKiB;
    minLoadDelta = b.minLoadDelta;
    maxProcesses = b.maxProcesses;
    processResponse = b.processResponse;
    maxOutputBytesPerSecond = b.maxOutputBytesPerSecond;
    outputResponse = b.outputResponse;
    maxExecutionsPerMinute = b.maxExecutionsPerMinute;
    rateResponse = b.rateResponse;
    durations = new RollingStats(window);
    memory = new RollingStats(window);
    load = new RollingStats(window);
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Checks the submission rate at {@code nowNanos}. */
  public synchronized List<Anomaly> onSubmit(String executionId, long nowNanos) {
    submissions.addLast(nowNanos);
    while (!submissions.isEmpty() && nowNanos - submissions.peekFirst() > 60_000_000_000L) {
      submissions.removeFirst();
    }
    if (submissions.size() > maxExecutionsPerMinute) {
      return List.of(
          new Anomaly(
              executionId,
              "",
              "exec-rate",
              submissions.size()
                  + " executions in the last minute, more than "
                  + maxExecutionsPerMinute,
              rateResponse));
    }
    return List.of();
  }

  /** Checks a sample taken while the execution runs. */
  public List<Anomaly> onSample(String executionId, String vm, Sample s) {
    List<Anomaly> out = new ArrayList<>();
    if (s.memUsedKiB() < 0
        || !(s.load1() >= 0)
        || Double.isInfinite(s.load1())
        || s.processCount() < 0) {
      out.add(
          impossible(
              executionId,
              vm,
              "memory "
                  + s.memUsedKiB()
                  + " KiB, load "
                  + s.load1()
                  + ", "
                  + s.processCount()
                  + " processes"));
    }
    if (s.processCount() > maxProcesses) {
      out.add(
          new Anomaly(
              executionId,
              vm,
              "process-count",
              s.processCount() + " processes in the guest, more than " + maxProcesses,
              processResponse));
    }
    double seconds = Math.max(1.0, s.elapsed().toMillis() / 1000.0);
    if (s.outputBytes() / seconds > maxOutputBytesPerSecond) {
      out.add(
          new Anomaly(
              executionId,
              vm,
              "output-flood",
              String.format(
                  "%d bytes of output in %.1f s, more than %d B/s",
                  s.outputBytes(), seconds, maxOutputBytesPerSecond),
              outputResponse));
    }
    return out;
  }

  /**
   * Scores a finished execution against the windows, then adds it to them unless it was flagged.
   *
   * @param peakMemKiB highest guest memory use sampled, or -1 if never sampled
   * @param peakLoad highest load sampled, or -1
   */
  public synchronized List<Anomaly> onCompleted(
      String executionId, String vm, Duration runTime, long peakMemKiB, double peakLoad) {
    List<Anomaly> out = new ArrayList<>();
    if (runTime.isNegative() || Double.isNaN(peakLoad) || Double.isInfinite(peakLoad)) {
      // the guest's word is worthless here: flag it, and keep it out of every window
      out.add(impossible(executionId, vm, "run time " + runTime + ", peak load " + peakLoad));
      return out;
    }
    check(
        out,
        executionId,
        vm,
        "duration-zscore",
        durations,
        (double) runTime.toMillis(),
        minDurationDeltaMillis,
        "ms");
    if (peakMemKiB >= 0) {
      check(
          out,
          executionId,
          vm,
          "memory-zscore",
          memory,
          (double) peakMemKiB,
          minMemoryDeltaKiB,
          "KiB");
    }
    if (peakLoad >= 0) {
      check(out, executionId, vm, "load-zscore", load, peakLoad, minLoadDelta, "");
    }
    // an outlier does not join the windows: it would make the next one look normal
    if (out.isEmpty()) {
      durations.add((double) runTime.toMillis());
      if (peakMemKiB >= 0) {
        memory.add((double) peakMemKiB);
      }
      if (peakLoad >= 0) {
        load.add(peakLoad);
      }
    }
    return out;
  }

  private Anomaly impossible(String executionId, String vm, String what) {
    return new Anomaly(
        executionId,
        vm,
        "guest-report",
        "the guest reported impossible values: " + what,
        zResponse);
  }

  private void check(
      List<Anomaly> out,
      String id,
      String vm,
      String rule,
      RollingStats w,
      double v,
      double minDelta,
      String unit) {
    if (w.size() < minSamples) {
      return;
    }
    double z = w.zScore(v);
    // a tight window makes tiny differences look extreme: also ask for a difference that matters
    if (z > zThreshold && v - w.mean() >= minDelta) {
      out.add(
          new Anomaly(
              id,
              vm,
              rule,
              String.format(
                  "%.1f%s is %.1f standard deviations above the mean %.1f%s of the last %d",
                  v, unit, z, w.mean(), unit, w.size()),
              zResponse));
    }
  }

  /** Settings of an {@link AnomalyDetector}; the defaults only log. */
  public static final class Builder {
    private int window = 100;
    private int minSamples = 10;
    private double zThreshold = 3.0;
    private Response zResponse = Response.LOG;
    private Duration minDurationDelta = Duration.ofSeconds(1);
    private double minMemoryDeltaKiB = 32 * 1024;
    private double minLoadDelta = 1.0;
    private int maxProcesses = 512;
    private Response processResponse = Response.LOG;
    private long maxOutputBytesPerSecond = 10L << 20;
    private Response outputResponse = Response.LOG;
    private int maxExecutionsPerMinute = 600;
    private Response rateResponse = Response.LOG;

    private Builder() {}

    /** Rolling windows of {@code size} executions; z-scores from {@code minSamples} on. */
    public Builder window(int size, int minSamples) {
      if (size < 2 || minSamples < 2 || minSamples > size) {
        throw new IllegalArgumentException(
            "need 2 <= minSamples <= size, was size " + size + ", minSamples " + minSamples);
      }
      this.window = size;
      this.minSamples = minSamples;
      return this;
    }

    public Builder zScore(double threshold, Response response) {
      if (!(threshold > 0)) {
        throw new IllegalArgumentException("threshold must be > 0, was " + threshold);
      }
      this.zThreshold = threshold;
      this.zResponse = Objects.requireNonNull(response);
      return this;
    }

    /**
     * The least difference from the mean that counts, whatever the z-score (defaults: 1 s of run
     * time, 32 MiB of memory, 1.0 of load): in a window of near-equal runs the standard deviation
     * is tiny, and 29 ms against a mean of 13 ms would otherwise be 4 deviations "out".
     */
    public Builder minDeviation(Duration runTime, long memoryKiB, double load) {
      this.minDurationDelta = Objects.requireNonNull(runTime);
      this.minMemoryDeltaKiB = memoryKiB;
      this.minLoadDelta = load;
      return this;
    }

    public Builder maxProcesses(int max, Response response) {
      this.maxProcesses = max;
      this.processResponse = Objects.requireNonNull(response);
      return this;
    }

    public Builder maxOutputBytesPerSecond(long max, Response response) {
      this.maxOutputBytesPerSecond = max;
      this.outputResponse = Objects.requireNonNull(response);
      return this;
    }

    public Builder maxExecutionsPerMinute(int max, Response response) {
      this.maxExecutionsPerMinute = max;
      this.rateResponse = Objects.requireNonNull(response);
      return this;
    }

    public AnomalyDetector build() {
      return new AnomalyDetector(this);
    }
  }
}
