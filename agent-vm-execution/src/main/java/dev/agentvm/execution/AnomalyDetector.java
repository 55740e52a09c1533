package dev.agentvm.execution;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * Spots executions out of the ordinary. Two kinds of checks:
 *
 * <ul>
 *   <li>z-scores over rolling windows of past executions of the same template, on what the host
 *       measured: wall time, CPU time of the VM's vCPUs, and the QEMU process's peak resident
 *       memory ({@link Finished}); an execution more than {@code zThreshold} standard deviations
 *       above the mean (once the window holds {@code minSamples}), and by at least a minimum
 *       difference, is flagged after it ends;
 *   <li>rules checked while it runs: more processes than {@code maxProcesses}, output faster than
 *       {@code maxOutputBytesPerSecond} (counted by the host); and at submission: more than {@code
 *       maxExecutionsPerMinute}.
 * </ul>
 *
 * The z-scores use only the host's numbers, which a hostile guest cannot change; it can only make
 * itself look worse. What the guest reports about itself (memory, load, processes) is its word: a
 * negative or non-finite number is an anomaly of its own ({@code guest-report}, with the z-score
 * response). Baselines are kept per template (at most {@value #MAX_TEMPLATES}, the least recently
 * used forgotten first), so a heavy template does not make a light one's outliers look normal.
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

  /**
   * A finished execution as the host measured it.
   *
   * @param template the baseline it is judged against: executions of one template are alike
   * @param wallTime from the command's start to its end, on the host's clock
   * @param cpuTime CPU time the VM's vCPUs used meanwhile; {@code null} if the hypervisor did not
   *     say
   * @param peakRssKiB the QEMU process's highest resident memory sampled, KiB; -1 if never sampled
   */
  public record Finished(
      String template, Duration wallTime, @Nullable Duration cpuTime, long peakRssKiB) {
    public Finished {
      Objects.requireNonNull(template, "template");
      Objects.requireNonNull(wallTime, "wallTime");
    }
  }

  /** Templates whose baselines are kept at once. */
  public static final int MAX_TEMPLATES = 64;

  /** The baselines by template, the least recently used forgotten beyond {@link #MAX_TEMPLATES}. */
  private static final class Baselines extends LinkedHashMap<String, Baseline> {
    private static final long serialVersionUID = 1L;

    Baselines() {
      super(16, 0.75f, true);
    }

    @Override
    protected boolean removeEldestEntry(Map.Entry<String, Baseline> eldest) {
      return size() > MAX_TEMPLATES;
    }
  }

  /** One template's windows. */
  private final class Baseline {
    final RollingStats wall = new RollingStats(window);
    final RollingStats cpu = new RollingStats(window);
    final RollingStats rss = new RollingStats(window);
  }

  private final int window;
  private final int minSamples;
  private final double zThreshold;
  private final Response zResponse;
  private final double minDurationDeltaMillis;
  private final double minMemoryDeltaKiB;
  private final double minCpuDeltaMillis;
  private final int maxProcesses;
  private final Response processResponse;
  private final long maxOutputBytesPerSecond;
  private final Response outputResponse;
  private final int maxExecutionsPerMinute;
  private final Response rateResponse;
  private final Map<String, Baseline> baselines = new Baselines();
  private final Deque<Long> submissions = new ArrayDeque<>();

  private AnomalyDetector(Builder b) {
    window = b.window;
    minSamples = b.minSamples;
    zThreshold = b.zThreshold;
    zResponse = b.zResponse;
    minDurationDeltaMillis = b.minDurationDelta.toMillis();
    minMemoryDeltaKiB = b.minMemoryDeltaKiB;
    minCpuDeltaMillis = b.minCpuDelta.toMillis();
    maxProcesses = b.maxProcesses;
    processResponse = b.processResponse;
    maxOutputBytesPerSecond = b.maxOutputBytesPerSecond;
    outputResponse = b.outputResponse;
    maxExecutionsPerMinute = b.maxExecutionsPerMinute;
    rateResponse = b.rateResponse;
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
   * Scores a finished execution against its template's windows, then adds it to them unless it was
   * flagged. The guest's own peaks are only checked for sense: they never join a window.
   *
   * @param peakGuestMemKiB highest memory use the guest reported, or -1 if never sampled
   * @param peakGuestLoad highest load the guest reported, or -1
   */
  public synchronized List<Anomaly> onCompleted(
      String executionId, String vm, Finished host, long peakGuestMemKiB, double peakGuestLoad) {
    List<Anomaly> out = new ArrayList<>();
    if (peakGuestMemKiB < -1
        || Double.isNaN(peakGuestLoad)
        || Double.isInfinite(peakGuestLoad)
        || (peakGuestLoad < 0 && peakGuestLoad != -1)) {
      out.add(
          impossible(
              executionId,
              vm,
              "peak memory " + peakGuestMemKiB + " KiB, peak load " + peakGuestLoad));
    }
    Baseline b = baselines.computeIfAbsent(host.template(), t -> new Baseline());
    double wall = host.wallTime().toMillis();
    Duration cpuTime = host.cpuTime();
    double cpu = cpuTime == null ? -1 : cpuTime.toMillis();
    double rss = host.peakRssKiB();
    List<Anomaly> scored = new ArrayList<>();
    check(scored, executionId, vm, "duration-zscore", b.wall, wall, minDurationDeltaMillis, "ms");
    if (cpu >= 0) {
      check(scored, executionId, vm, "cpu-zscore", b.cpu, cpu, minCpuDeltaMillis, "ms CPU");
    }
    if (rss >= 0) {
      check(scored, executionId, vm, "memory-zscore", b.rss, rss, minMemoryDeltaKiB, "KiB");
    }
    // an outlier does not join the windows: it would make the next one look normal
    if (scored.isEmpty()) {
      b.wall.add(wall);
      if (cpu >= 0) {
        b.cpu.add(cpu);
      }
      if (rss >= 0) {
        b.rss.add(rss);
      }
    }
    out.addAll(scored);
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
    private Duration minCpuDelta = Duration.ofSeconds(1);
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
     * The least difference from the mean that counts, whatever the z-score (defaults: 1 s of wall
     * time, 1 s of CPU time, 32 MiB of resident memory): in a window of near-equal runs the
     * standard deviation is tiny, and 29 ms against a mean of 13 ms would otherwise be 4 deviations
     * "out".
     */
    public Builder minDeviation(Duration wallTime, Duration cpuTime, long memoryKiB) {
      this.minDurationDelta = Objects.requireNonNull(wallTime);
      this.minCpuDelta = Objects.requireNonNull(cpuTime);
      this.minMemoryDeltaKiB = memoryKiB;
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
