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

  @Test
  void flagsARunMuchLongerThanUsualOnlyOnceTheWindowIsFull() {
    AnomalyDetector d =
        AnomalyDetector.builder().window(20, 5).zScore(3, Response.QUARANTINE_VM).build();
    for (int i = 0; i < 4; i++) {
      assertEquals(
          List.of(), d.onCompleted("e" + i, "vm", Duration.ofMillis(1000 + i * 10), -1, -1));
    }
    AnomalyDetector young = AnomalyDetector.builder().window(20, 5).build();
    young.onCompleted("a", "vm", Duration.ofSeconds(1), -1, -1);
    young.onCompleted("b", "vm", Duration.ofMillis(1010), -1, -1);
    assertEquals(
        List.of(),
        young.onCompleted("early", "vm", Duration.ofSeconds(60), -1, -1),
        "2 samples are too few to judge");
    for (int i = 0; i < 10; i++) {
      d.onCompleted("n" + i, "vm", Duration.ofMillis(1000 + (i % 3) * 20), 50_000 + i, 0.5);
    }
    List<Anomaly> a = d.onCompleted("slow", "vm-9", Duration.ofSeconds(30), 50_000, 0.5);
    assertEquals(1, a.size(), a.toString());
    assertEquals("duration-zscore", a.get(0).rule());
    assertEquals(Response.QUARANTINE_VM, a.get(0).response());
    assertEquals("vm-9", a.get(0).vm());
    assertEquals(
        1,
        d.onCompleted("slow2", "vm", Duration.ofSeconds(30), 50_000, 0.5).size(),
        "the first outlier did not join the window and hide the second");
  }

  /** A guest that reports +Infinity once must not switch the z-scores off for good. */
  @Test
  void impossibleGuestNumbersAreFlaggedAndKeptOutOfTheWindows() {
    AnomalyDetector d = AnomalyDetector.builder().window(20, 5).build();
    for (int i = 0; i < 10; i++) {
      d.onCompleted("n" + i, "vm", Duration.ofMillis(1000 + (i % 3) * 20), 50_000 + i, 0.5);
    }
    for (double bad : new double[] {Double.POSITIVE_INFINITY, Double.NaN}) {
      List<Anomaly> a = d.onCompleted("inf", "vm", Duration.ofSeconds(1), 50_000, bad);
      assertEquals(1, a.size(), a.toString());
      assertEquals("guest-report", a.get(0).rule());
    }
    assertEquals(
        "guest-report",
        d.onCompleted("neg", "vm", Duration.ofMillis(-5), 50_000, 0.5).get(0).rule());
    assertEquals(
        "load-zscore",
        d.onCompleted("hot", "vm", Duration.ofSeconds(1), 50_000, 40.0).get(0).rule(),
        "the load rule still works after the infinity");
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
      d.onCompleted("n" + i, "vm", Duration.ofMillis(13 + i % 2), -1, -1);
    }
    assertEquals(
        List.of(), d.onCompleted("x", "vm", Duration.ofMillis(43), -1, -1), "30 ms is noise");
    assertEquals(1, d.onCompleted("y", "vm", Duration.ofMillis(1500), -1, -1).size());
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
