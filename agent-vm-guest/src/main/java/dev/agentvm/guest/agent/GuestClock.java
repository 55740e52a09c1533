package dev.agentvm.guest.agent;

import java.io.IOException;
import java.lang.ProcessBuilder.Redirect;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Keeps the guest's wall clock on the hypervisor's real-time clock.
 *
 * <p>A guest restored from a memory image (a resume, a rollback, a fork, a clone of a warm image)
 * wakes with the wall clock it had when the image was saved, and its kernel reads the RTC only at
 * boot. The RTC itself follows the host's clock across a restore. Every HELLO starts a connection,
 * and every restore is followed by one, so the agent checks the clock there, before it answers: a
 * command sent after the HELLO's answer sees the right time. The RTC counts whole seconds, so the
 * clock is stepped only when it is more than about a second off, to the start of the RTC's second
 * ({@code date -s @N} takes whole seconds): up to a second late, where the kernel's own boot-time
 * setting adds half a second.
 */
final class GuestClock {
  /** The RTC's time in whole seconds since the epoch (Linux sysfs). */
  static final Path RTC = Path.of("/sys/class/rtc/rtc0/since_epoch");

  private static final long STEP_TIMEOUT_SECONDS = 5;

  /** The latest RTC reading taken as real: 9999-12-31, so that no sum in ms can overflow. */
  static final long MAX_RTC_SECONDS = 253_402_300_799L;

  private GuestClock() {}

  /**
   * The second to step the clock to, or -1 when it is close enough. The true time lies in {@code
   * [rtc, rtc + 1)} seconds. A clock up to 1.5 s behind the RTC's second or up to 2 s ahead of it
   * is left alone: after a step (to the second's start, plus the time {@code date} took to start)
   * the next check does not step again.
   *
   * @param systemMillis the guest's wall clock, in ms since the epoch
   * @param rtcSeconds the RTC's time, in whole seconds since the epoch
   */
  static long stepTo(long systemMillis, long rtcSeconds) {
    long rtcMillis = rtcSeconds * 1000;
    if (systemMillis < rtcMillis - 1500 || systemMillis >= rtcMillis + 2000) {
      return rtcSeconds;
    }
    return -1;
  }

  /** Parses the RTC file's text, -1 when it is not a count of seconds. */
  static long parseRtc(String text) {
    try {
      long s = Long.parseLong(text.trim());
      return s >= 0 && s <= MAX_RTC_SECONDS ? s : -1;
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  /**
   * Steps the clock to the RTC when it is off; does nothing where there is no RTC. Never throws: a
   * clock that cannot be set is logged and the HELLO is answered anyway.
   */
  static void sync() {
    sync(RTC, "date");
  }

  /**
   * {@link #sync()} with the RTC file and the {@code date} program given (tests pass programs that
   * cannot set a clock).
   *
   * @return whether the clock was stepped
   */
  static boolean sync(Path rtcFile, String dateProgram) {
    long rtc;
    try {
      rtc = parseRtc(Files.readString(rtcFile, StandardCharsets.US_ASCII));
    } catch (NoSuchFileException e) {
      return false;
    } catch (IOException e) {
      GuestAgent.log("cannot read the RTC: " + e);
      return false;
    }
    long now = System.currentTimeMillis();
    long to = rtc < 0 ? -1 : stepTo(now, rtc);
    if (to < 0) {
      return false;
    }
    try {
      Process p =
          new ProcessBuilder(dateProgram, "-u", "-s", "@" + to)
              .redirectOutput(Redirect.DISCARD)
              .redirectError(Redirect.INHERIT)
              .start();
      if (!p.waitFor(STEP_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        GuestAgent.log("setting the clock took over " + STEP_TIMEOUT_SECONDS + " s; left as is");
        return false;
      }
      if (p.exitValue() != 0 || stepTo(System.currentTimeMillis(), to) >= 0) {
        // busybox date exits 0 even when it could not set the time: look at the clock itself
        GuestAgent.log("date -s @" + to + " did not set the clock (exit " + p.exitValue() + ")");
        return false;
      }
      GuestAgent.log("clock stepped by " + (to * 1000 - now) + " ms to the RTC");
      return true;
    } catch (IOException e) {
      GuestAgent.log("cannot set the clock: " + e);
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }
}
