package dev.agentvm.benchmarks;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Percentiles of measured samples. */
final class Stats {
  private Stats() {}

  static double pct(List<Double> v, int p) {
    List<Double> s = new ArrayList<>(v);
    Collections.sort(s);
    int i = (int) Math.ceil(p / 100.0 * s.size()) - 1;
    return s.get(Math.max(0, Math.min(s.size() - 1, i)));
  }

  static double median(List<Double> v) {
    return pct(v, 50);
  }

  static double ms(long nanos) {
    return nanos / 1e6;
  }
}
