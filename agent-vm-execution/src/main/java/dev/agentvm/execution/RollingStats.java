package dev.agentvm.execution;

/** Mean and standard deviation of the last {@code capacity} values. Not thread-safe. */
final class RollingStats {
  private final double[] values;
  private int size;
  private int next;

  RollingStats(int capacity) {
    if (capacity < 2) {
      throw new IllegalArgumentException("capacity must be >= 2, was " + capacity);
    }
    values = new double[capacity];
  }

  void add(double v) {
    if (!Double.isFinite(v)) {
      return; // one infinity would poison the mean and deviation of every later score
    }
    values[next] = v;
    next = (next + 1) % values.length;
    size = Math.min(size + 1, values.length);
  }

  int size() {
    return size;
  }

  double mean() {
    double s = 0;
    for (int i = 0; i < size; i++) {
      s += values[i];
    }
    return size == 0 ? 0 : s / size;
  }

  double stddev() {
    if (size < 2) {
      return 0;
    }
    double m = mean();
    double s = 0;
    for (int i = 0; i < size; i++) {
      s += (values[i] - m) * (values[i] - m);
    }
    return Math.sqrt(s / (size - 1));
  }

  /**
   * How many standard deviations {@code v} lies above the mean; 0 if the spread is zero and {@code
   * v} equals the mean, +infinity if the spread is zero and {@code v} is larger.
   */
  double zScore(double v) {
    double sd = stddev();
    double m = mean();
    if (sd == 0) {
      return v > m ? Double.POSITIVE_INFINITY : 0;
    }
    return (v - m) / sd;
  }
}
