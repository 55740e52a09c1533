package dev.agentvm.execution;

import java.time.Duration;
import java.util.function.DoubleSupplier;

/**
 * How a pool retries a factory that keeps failing, and what it says about it. The wait before the
 * next attempt doubles with each failure in a row, from {@link #FIRST} up to {@link #MAX}; each
 * wait is drawn between half and all of that (jitter, so pools that failed together do not retry in
 * step). The first failure is worth a WARN with its cause; then one summary WARN at most every
 * {@link #SUMMARY_EVERY} (the failures in between at DEBUG), and one INFO when making VMs works
 * again.
 *
 * <p>Time is a parameter ({@code nowNanos}, the pool's clock) and the jitter is given: tests drive
 * it without sleeping. Not thread-safe: the pool calls it under its lock.
 */
final class RefillBackoff {
  static final Duration FIRST = Duration.ofSeconds(1);
  static final Duration MAX = Duration.ofMinutes(1);
  static final Duration SUMMARY_EVERY = Duration.ofMinutes(5);

  /** What to log about a failure. */
  enum Report {
    /** The first failure in a row: WARN with the cause. */
    FIRST,
    /** A summary is due: WARN with the count since the last one. */
    SUMMARY,
    /** Nothing new: DEBUG. */
    QUIET
  }

  /**
   * @param delayNanos how long to wait before the next attempt
   * @param report what to log
   * @param failures failures in a row, this one included
   * @param sinceReport failures since the last WARN, this one included
   * @param failingNanos time since the first failure in a row
   */
  record Verdict(
      long delayNanos, Report report, int failures, int sinceReport, long failingNanos) {}

  private final DoubleSupplier jitter;
  private int failures;
  private long firstFailureNanos;
  private long lastReportNanos;
  private int sinceReport;

  /**
   * @param jitter values in [0, 1), e.g. a random generator's {@code nextDouble}
   */
  RefillBackoff(DoubleSupplier jitter) {
    this.jitter = jitter;
  }

  /** Failures in a row so far; 0 after a success. */
  int failures() {
    return failures;
  }

  /** An attempt failed at {@code nowNanos}. */
  Verdict failed(long nowNanos) {
    failures++;
    sinceReport++;
    Report report;
    if (failures == 1) {
      firstFailureNanos = nowNanos;
      report = Report.FIRST;
    } else if (nowNanos - lastReportNanos >= SUMMARY_EVERY.toNanos()) {
      report = Report.SUMMARY;
    } else {
      report = Report.QUIET;
    }
    int since = sinceReport;
    if (report != Report.QUIET) {
      lastReportNanos = nowNanos;
      sinceReport = 0;
    }
    return new Verdict(delayNanos(), report, failures, since, nowNanos - firstFailureNanos);
  }

  /** The wait after the current run of failures: in [cap/2, cap], cap = FIRST * 2^(n-1) <= MAX. */
  private long delayNanos() {
    long cap = FIRST.toNanos() << Math.min(failures - 1, 20);
    cap = Math.min(cap, MAX.toNanos());
    double j = Math.max(0, Math.min(1, jitter.getAsDouble()));
    long half = cap / 2;
    return half + (long) (j * half);
  }

  /**
   * An attempt succeeded: the back-off starts over. Returns the failures in a row it ends (0 if
   * there were none), for the line that says making VMs works again.
   */
  int succeeded() {
    int ended = failures;
    failures = 0;
    sinceReport = 0;
    return ended;
  }

  /** When the current run of failures began (meaningful while {@link #failures()} > 0). */
  long firstFailureNanos() {
    return firstFailureNanos;
  }
}
