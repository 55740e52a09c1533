package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GuestClockTest {
  private static final long RTC = 1_800_000_000L;

  @Test
  void aClockWithinASecondOfTheRtcIsLeftAlone() {
    for (long ms = RTC * 1000 - 1500; ms < RTC * 1000 + 2000; ms += 50) {
      assertEquals(-1, GuestClock.stepTo(ms, RTC), "at " + ms);
    }
  }

  @Test
  void aClockBehindOrAheadIsSteppedToTheRtcsSecond() {
    assertEquals(RTC, GuestClock.stepTo(RTC * 1000 - 1501, RTC));
    assertEquals(RTC, GuestClock.stepTo((RTC - 14_826) * 1000, RTC), "a warm image 4 h old");
    assertEquals(RTC, GuestClock.stepTo(RTC * 1000 + 2000, RTC));
    assertEquals(RTC, GuestClock.stepTo(0, RTC));
  }

  @Test
  void aStepNeverLandsOnTheNextCheck() {
    // after a step to the RTC's second, the clock runs on; no later reading of the RTC asks again,
    // even when the RTC was read at the end of its second and date took 400 ms to start
    for (long elapsed = 0; elapsed < 5000; elapsed += 10) {
      long truth = RTC * 1000 + 999 + 400 + elapsed;
      long clock = RTC * 1000 + elapsed;
      assertEquals(-1, GuestClock.stepTo(clock, Math.floorDiv(truth, 1000)), "after " + elapsed);
    }
  }

  @Test
  void syncStepsOnlyAClockThatIsOffAndChecksThatTheStepTookHold(@TempDir Path dir)
      throws Exception {
    // programs that cannot set a clock: this runs on the build machine, perhaps as root
    Path rtc = dir.resolve("since_epoch");
    assertFalse(
        GuestClock.sync(dir.resolve("none"), GuestClock.program("false")), "no RTC: nothing to do");
    Files.writeString(rtc, "garbage\n");
    assertFalse(GuestClock.sync(rtc, GuestClock.program("false")), "an unreadable RTC is ignored");
    Files.writeString(rtc, System.currentTimeMillis() / 1000 + "\n");
    assertFalse(
        GuestClock.sync(rtc, GuestClock.program("false")), "a clock that is right is left alone");
    Files.writeString(rtc, "1000000000\n"); // 2001: the clock would have to be stepped
    assertFalse(GuestClock.sync(rtc, GuestClock.program("false")), "date failed");
    assertFalse(
        GuestClock.sync(rtc, GuestClock.program("true")),
        "date said yes but the clock did not move");
    assertFalse(
        GuestClock.sync(rtc, GuestClock.program(dir.resolve("no-such-program").toString())),
        "no date");
  }

  @Test
  void onlyACountOfSecondsIsAnRtcReading() {
    assertEquals(RTC, GuestClock.parseRtc(RTC + "\n"));
    assertEquals(-1, GuestClock.parseRtc(""));
    assertEquals(-1, GuestClock.parseRtc("-5"));
    assertEquals(-1, GuestClock.parseRtc("12x"));
    assertEquals(-1, GuestClock.parseRtc("99999999999999999999"));
    assertEquals(-1, GuestClock.parseRtc(Long.toString(GuestClock.MAX_RTC_SECONDS + 1)));
    assertEquals(
        GuestClock.MAX_RTC_SECONDS,
        GuestClock.stepTo(Long.MAX_VALUE, GuestClock.MAX_RTC_SECONDS),
        "no overflow");
  }

  @Test
  void aSetterThatFailsOrIsInterruptedLeavesTheClockAndSaysSo(@TempDir Path dir) throws Exception {
    Path rtc = dir.resolve("since_epoch");
    Files.writeString(rtc, "1000000000\n");
    assertFalse(
        GuestClock.sync(
            rtc,
            s -> {
              throw new IOException("no such device");
            }));
    assertFalse(
        GuestClock.sync(
            rtc,
            s -> {
              throw new InterruptedException();
            }));
    assertTrue(Thread.interrupted(), "the interrupt is kept for the caller");
    assertEquals("clock_settime", GuestClock.NATIVE.toString());
    assertEquals("date", GuestClock.program("date").toString());
  }

  @Test
  void theNativeLibraryIsOptional(@TempDir Path dir) {
    String before = System.getProperty(NativeHelpers.PROPERTY);
    try {
      System.clearProperty(NativeHelpers.PROPERTY);
      assertFalse(NativeHelpers.load(), "not named: not loaded");
      System.setProperty(NativeHelpers.PROPERTY, dir.resolve("libnone.so").toString());
      assertFalse(NativeHelpers.load(), "a library that is not there: the agent goes on");
      assertFalse(NativeHelpers.isLoaded());
    } finally {
      if (before == null) {
        System.clearProperty(NativeHelpers.PROPERTY);
      } else {
        System.setProperty(NativeHelpers.PROPERTY, before);
      }
    }
  }
}
