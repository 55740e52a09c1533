package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The back-off and what it says, with time as a parameter and the jitter given. */
class RefillBackoffTest {
  private static final long SECOND = Duration.ofSeconds(1).toNanos();

  @Test
  void waitsDoubleWithEachFailureInARowUpToTheCapWithinTheirJitterBounds() {
    RefillBackoff low = new RefillBackoff(() -> 0.0);
    RefillBackoff high = new RefillBackoff(() -> 0.999_999);
    List<Long> lows = new ArrayList<>();
    List<Long> highs = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      lows.add(low.failed(i * SECOND).delayNanos());
      highs.add(high.failed(i * SECOND).delayNanos());
    }
    long cap = RefillBackoff.FIRST.toNanos();
    for (int i = 0; i < 12; i++) {
      assertEquals(cap / 2, lows.get(i), "the least wait is half the cap, at " + i);
      assertTrue(highs.get(i) <= cap && highs.get(i) > cap * 9 / 10, "at most the cap: " + i);
      cap = Math.min(cap * 2, RefillBackoff.MAX.toNanos());
    }
    assertEquals(RefillBackoff.MAX.toNanos() / 2, lows.get(11), "capped");
    RefillBackoff odd = new RefillBackoff(() -> 7); // out of range: clamped, never beyond the cap
    assertEquals(RefillBackoff.FIRST.toNanos(), odd.failed(0).delayNanos());
  }

  @Test
  void theFirstFailureIsReportedThenASummaryAtMostEveryFiveMinutesThenRecovery() {
    RefillBackoff b = new RefillBackoff(() -> 0.5);
    long t = 1_000 * SECOND;
    RefillBackoff.Verdict first = b.failed(t);
    assertEquals(RefillBackoff.Report.FIRST, first.report());
    assertEquals(1, first.failures());
    int quiet = 0;
    long step = 30 * SECOND;
    RefillBackoff.Verdict v;
    long at = t;
    do {
      at += step;
      v = b.failed(at);
      if (v.report() == RefillBackoff.Report.QUIET) {
        quiet++;
      }
    } while (v.report() == RefillBackoff.Report.QUIET);
    assertEquals(RefillBackoff.Report.SUMMARY, v.report());
    assertEquals(RefillBackoff.SUMMARY_EVERY.toNanos(), at - t, "five minutes after the first");
    assertEquals(quiet + 1, v.sinceReport(), "the summary counts what was not reported");
    assertEquals(quiet + 2, v.failures());
    assertEquals(at - t, v.failingNanos());
    assertEquals(RefillBackoff.Report.QUIET, b.failed(at + step).report(), "then quiet again");

    assertEquals(quiet + 3, b.succeeded(), "the run of failures it ends");
    assertEquals(0, b.failures());
    assertEquals(0, b.succeeded(), "nothing to recover from");
    RefillBackoff.Verdict again = b.failed(at + 2 * step);
    assertEquals(RefillBackoff.Report.FIRST, again.report(), "a new run is reported anew");
    assertEquals(RefillBackoff.FIRST.toNanos() * 3 / 4, again.delayNanos(), "from the start");
  }
}
