package dev.agentvm.benchmarks;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/** Percentiles of measured samples. */
final class Stats {
  private Stats() {}

  static double pct(List<Double> v, int p) {
    List<Double> s = new ArrayList<>(v);
    Collections.sort(s);
    int i = (int) Math.ceil(p / 100.0 * s.size()) - 1;
    return s.get(Math.max(0, Math.min(s.size() - 1, i)));
  }

  /** The samples recorded under {@code key}; fails naming the key if none were. */
  static List<Double> samples(Map<String, List<Double>> m, String key) {
    return Objects.requireNonNull(m.get(key), () -> "no samples for " + key);
  }

  /**
   * One row of the table {@code scripts/bench.sh} prints at the end: a path, its floor measured in
   * the same run, their ratio and the goal. A tab-separated line starting with {@code RATIO}.
   *
   * @param atMost the goal is a ceiling on the ratio (a time); otherwise a floor (a throughput)
   * @param goal the ratio's goal, or NaN where there is none
   */
  static void ratio(
      String path, double value, double floor, String unit, boolean atMost, double goal) {
    double ratio = value / floor;
    String goalText = Double.isNaN(goal) ? "-" : (atMost ? "<= " : ">= ") + fmt(goal);
    String verdict =
        Double.isNaN(goal) ? "-" : (atMost ? ratio <= goal : ratio >= goal) ? "met" : "missed";
    System.out.printf(
        "RATIO\t%s\t%s %s\t%s %s\t%s\t%s\t%s%n",
        path, fmt(value), unit, fmt(floor), unit, fmt(ratio), goalText, verdict);
  }

  private static String fmt(double v) {
    return String.format(java.util.Locale.ROOT, Math.abs(v) >= 100 ? "%.0f" : "%.2f", v);
  }

  static double median(List<Double> v) {
    return pct(v, 50);
  }

  static double ms(long nanos) {
    return nanos / 1e6;
  }

  /** Resident memory of a running domain's QEMU process (local libvirt), in MB (10^6 bytes). */
  static double qemuRssMb(String domain) throws java.io.IOException {
    String pid =
        java.nio.file.Files.readString(
                java.nio.file.Path.of("/run/libvirt/qemu/" + domain + ".pid"))
            .trim();
    long kib = 0;
    for (String line :
        java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/" + pid + "/status"))) {
      if (line.startsWith("VmRSS:")) {
        kib += Long.parseLong(line.replaceAll("\\D", ""));
      }
    }
    return kib * 1024 / 1e6;
  }

  /** The summed {@link #qemuRssMb} of {@code vms}. */
  static double qemuRssMb(List<dev.agentvm.core.VM> vms) throws java.io.IOException {
    double mb = 0;
    for (dev.agentvm.core.VM vm : vms) {
      mb += qemuRssMb(vm.name());
    }
    return mb;
  }

  /** Closes every VM of {@code vms} and empties the list. */
  static void closeAll(List<dev.agentvm.core.VM> vms) {
    for (dev.agentvm.core.VM vm : vms) {
      vm.close();
    }
    vms.clear();
  }

  /** Bytes a file really takes on disk (sparse files take less than their size); -1 on failure. */
  static long allocated(java.nio.file.Path p) {
    try {
      Process du = new ProcessBuilder("du", "-B1", p.toString()).start();
      String out =
          new String(du.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8)
              .trim();
      du.waitFor();
      return Long.parseLong(out.split("\\s+", -1)[0]);
    } catch (Exception e) {
      return -1;
    }
  }
}
