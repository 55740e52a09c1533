package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.doubles;
import static org.quicktheories.generators.SourceDSL.lists;

import dev.agentvm.execution.AnomalyDetector.Response;
import dev.agentvm.execution.AnomalyDetector.Sample;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class AnomalyDetectorTest {
  @Test
  void rollingStatsAgreeWithTheTextbook() {
    qt().forAll(lists().of(doubles().between(-1e6, 1e6)).ofSizeBetween(2, 50))
        .checkAssert(
            values -> {
              RollingStats r = new RollingStats(values.size());
              values.forEach(r::add);
              double mean = values.stream().mapToDouble(d -> d).average().orElseThrow();
              double var =
                  values.stream().mapToDouble(d -> (d - mean) * (d - mean)).sum()
                      / (values.size() - 1);
              assertEquals(mean, r.mean(), 1e-6 * Math.max(1, Math.abs(mean)));
              assertEquals(Math.sqrt(var), r.stddev(), 1e-6 * Math.max(1, Math.sqrt(var)));
              assertTrue(Math.abs(r.zScore(mean)) < 1e-6 || r.stddev() == 0);
            });
  }

  @Test
  void windowForgetsOldValues() {
    RollingStats r = new RollingStats(3);
    for (double v : new double[] {100, 100, 100, 1, 2, 3}) {
      r.add(v);
    }
    assertEquals(2.0, r.mean(), 1e-9);
    assertEquals(3, r.size());
  }

  private static AnomalyDetector.Finished run(String template, long wallMs, long cpuMs, long rss) {
    return new AnomalyDetector.Finished(
        template, Duration.ofMillis(wallMs), Duration.ofMillis(cpuMs), rss);
  }

  private static AnomalyDetector.Finished wall(long ms) {
    return new AnomalyDetector.Finished("t", Duration.ofMillis(ms), null, -1);
  }

  @Test
  void flagsARunMuchLongerThanUsualOnlyOnceTheWindowIsFull() {
    AnomalyDetector d =
        AnomalyDetector.builder().window(20, 5).zScore(3, Response.QUARANTINE_VM).build();
    for (int i = 0; i < 4; i++) {
      assertEquals(List.of(), d.onCompleted("e" + i, "vm", wall(1000 + i * 10), -1, -1));
    }
    AnomalyDetector young = AnomalyDetector.builder().window(20, 5).build();
    young.onCompleted("a", "vm", wall(1000), -1, -1);
    young.onCompleted("b", "vm", wall(1010), -1, -1);
    assertEquals(
        List.of(),
        young.onCompleted("early", "vm", wall(60_000), -1, -1),
        "2 samples are too few to judge");
    for (int i = 0; i < 10; i++) {
      d.onCompleted("n" + i, "vm", run("t", 1000 + (i % 3) * 20, 500, 200_000 + i), 50_000, 0.5);
    }
    List<Anomaly> a = d.onCompleted("slow", "vm-9", run("t", 30_000, 500, 200_000), 50_000, 0.5);
    assertEquals(1, a.size(), a.toString());
    assertEquals("duration-zscore", a.get(0).rule());
    assertEquals(Response.QUARANTINE_VM, a.get(0).response());
    assertEquals("vm-9", a.get(0).vm());
    assertEquals(
        1,
        d.onCompleted("slow2", "vm", run("t", 30_000, 500, 200_000), 50_000, 0.5).size(),
        "the first outlier did not join the window and hide the second");
  }

  /** The host's numbers judge: a guest that reports itself idle is flagged for what it used. */
  @Test
  void hostCpuAndMemoryAreJudgedWhateverTheGuestSays() {
    AnomalyDetector d = AnomalyDetector.builder().window(20, 5).build();
    for (int i = 0; i < 10; i++) {
      d.onCompleted("n" + i, "vm", run("t", 2000, 300 + i * 10, 200_000 + i * 100), 1000, 0.1);
    }
    assertEquals(
        List.of("cpu-zscore"),
        d.onCompleted("miner", "vm", run("t", 2000, 1900, 200_000), 1000, 0.0).stream()
            .map(Anomaly::rule)
            .toList(),
        "a busy loop that the guest's load does not show");
    assertEquals(
        List.of("memory-zscore"),
        d.onCompleted("hog", "vm", run("t", 2000, 300, 400_000), 1000, 0.1).stream()
            .map(Anomaly::rule)
            .toList());
  }

  /** A template's baseline is its own: a heavy template does not hide a light one's outlier. */
  @Test
  void baselinesArePerTemplate() {
    AnomalyDetector d = AnomalyDetector.builder().window(20, 5).build();
    for (int i = 0; i < 10; i++) {
      d.onCompleted("l" + i, "vm", run("light", 100 + i, 50, 100_000), -1, -1);
      d.onCompleted("h" + i, "vm", run("heavy", 60_000 + i * 1000, 50_000, 100_000), -1, -1);
    }
    assertEquals(
        "duration-zscore",
        d.onCompleted("x", "vm", run("light", 30_000, 50, 100_000), -1, -1).get(0).rule(),
        "30 s is normal for the heavy template, not for the light one");
    assertEquals(
        List.of(), d.onCompleted("y", "vm", run("heavy", 62_000, 50_000, 100_000), -1, -1));
    assertEquals(
        List.of(),
        d.onCompleted("z", "vm", run("new", 600_000, 1, 1), -1, -1),
        "a template seen for the first time has no baseline yet");
  }

  /** A guest that reports +Infinity once must not switch the z-scores off for good. */
  @Test
  void impossibleGuestNumbersAreFlaggedAndKeptOutOfTheWindows() {
    AnomalyDetector d = AnomalyDetector.builder().window(20, 5).build();
    for (int i = 0; i < 10; i++) {
      d.onCompleted("n" + i, "vm", run("t", 1000 + (i % 3) * 20, 500, 200_000), 50_000 + i, 0.5);
    }
    for (double bad : new double[] {Double.POSITIVE_INFINITY, Double.NaN, -7}) {
      List<Anomaly> a = d.onCompleted("inf", "vm", run("t", 1000, 500, 200_000), 50_000, bad);
      assertEquals(1, a.size(), a.toString());
      assertEquals("guest-report", a.get(0).rule());
    }
    assertEquals(
        "guest-report",
        d.onCompleted("neg", "vm", run("t", 1000, 500, 200_000), -5, 0.5).get(0).rule());
    assertEquals(
        "duration-zscore",
        d.onCompleted("slow", "vm", run("t", 20_000, 500, 200_000), 50_000, 0.5).get(0).rule(),
        "the rules still work after the infinity");
    assertEquals(
        "guest-report",
        d.onSample("s", "vm", new AnomalyDetector.Sample(-1, Double.NaN, -3, 0, Duration.ZERO))
            .get(0)
            .rule());
    assertEquals(
        List.of(),
        d.onSample("s", "vm", new AnomalyDetector.Sample(1, 0.1, 3, 0, Duration.ofSeconds(1))));
  }

  @Test
  void smallDifferencesInATightWindowAreNotAnomalies() {
    AnomalyDetector d = AnomalyDetector.builder().window(20, 5).build();
    for (int i = 0; i < 15; i++) {
      d.onCompleted("n" + i, "vm", wall(13 + i % 2), -1, -1);
    }
    assertEquals(List.of(), d.onCompleted("x", "vm", wall(43), -1, -1), "30 ms is noise");
    assertEquals(1, d.onCompleted("y", "vm", wall(1500), -1, -1).size());
  }

  @Test
  void templatesBeyondTheCapForgetTheLeastRecentlyUsed() {
    AnomalyDetector d = AnomalyDetector.builder().window(20, 5).build();
    for (int i = 0; i < 10; i++) {
      d.onCompleted("k" + i, "vm", run("kept", 100, 10, 1000), -1, -1);
    }
    for (int t = 0; t < AnomalyDetector.MAX_TEMPLATES + 5; t++) {
      d.onCompleted("o" + t, "vm", run("other-" + t, 100, 10, 1000), -1, -1);
    }
    assertEquals(
        List.of(),
        d.onCompleted("x", "vm", run("kept", 60_000, 10, 1000), -1, -1),
        "the oldest template's baseline was forgotten, not kept without bound");
  }

  @Test
  void rulesForProcessesOutputAndRate() {
    AnomalyDetector d =
        AnomalyDetector.builder()
            .maxProcesses(50, Response.KILL_EXECUTION)
            .maxOutputBytesPerSecond(1000, Response.LOG)
            .maxExecutionsPerMinute(2, Response.LOG)
            .build();
    assertEquals(
        List.of(), d.onSample("e", "vm", new Sample(1000, 0.1, 10, 500, Duration.ofSeconds(1))));
    List<Anomaly> a =
        d.onSample("e", "vm", new Sample(1000, 0.1, 80, 50_000, Duration.ofSeconds(2)));
    assertEquals(List.of("process-count", "output-flood"), a.stream().map(Anomaly::rule).toList());
    assertEquals(Response.KILL_EXECUTION, a.get(0).response());
    long t = 0;
    assertEquals(List.of(), d.onSubmit("1", t));
    assertEquals(List.of(), d.onSubmit("2", t + 1));
    assertEquals("exec-rate", d.onSubmit("3", t + 2).get(0).rule());
    assertEquals(
        List.of(), d.onSubmit("4", t + 61_000_000_000L), "a minute later the rate is low again");
  }
}
