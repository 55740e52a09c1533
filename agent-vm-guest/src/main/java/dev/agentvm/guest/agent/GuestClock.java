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
 * (the RTC says no more): up to a second late, where the kernel's own boot-time setting adds half a
 * second.
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
   * is left alone: after a step (to the second's start, plus the time the step itself took) the
   * next check does not step again.
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

  /** Sets the wall clock to a whole second since the epoch. */
  interface Setter {
    /**
     * Asks for the clock to be set; whether it took hold is checked by the caller.
     *
     * @return whether the request was carried out without an error (logged here when not)
     */
    boolean set(long seconds) throws IOException, InterruptedException;
  }

  /** {@code clock_settime} in the agent's own process (the micro image's native library). */
  static final Setter NATIVE =
      new Setter() {
        @Override
        public boolean set(long seconds) throws IOException, InterruptedException {
          int errno;
          try {
            errno = NativeHelpers.setClock(seconds);
          } catch (LinkageError e) { // a library that loaded but does not bind: never again
            NativeHelpers.unusable(e);
            return program("date").set(seconds);
          }
          if (errno != 0) {
            GuestAgent.log("clock_settime to " + seconds + " failed: errno " + errno);
          }
          return errno == 0;
        }

        @Override
        public String toString() {
          return "clock_settime";
        }
      };

  /** {@code <program> -u -s @N}, a process per step: where the native library is not loaded. */
  static Setter program(String program) {
    return new Setter() {
      @Override
      public boolean set(long seconds) throws IOException, InterruptedException {
        Process p =
            new ProcessBuilder(program, "-u", "-s", "@" + seconds)
                .redirectOutput(Redirect.DISCARD)
                .redirectError(Redirect.INHERIT)
                .start();
        if (!p.waitFor(STEP_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
          p.destroyForcibly();
          GuestAgent.log("setting the clock took over " + STEP_TIMEOUT_SECONDS + " s; left as is");
          return false;
        }
        if (p.exitValue() != 0) {
          GuestAgent.log(this + " -s @" + seconds + " exited with " + p.exitValue());
          return false;
        }
        return true;
      }

      @Override
      public String toString() {
        return program;
      }
    };
  }

  /**
   * Steps the clock to the RTC when it is off; does nothing where there is no RTC. Never throws: a
   * clock that cannot be set is logged and the HELLO is answered anyway. Uses {@code clock_settime}
   * when the native library is loaded (measured in a restored guest under TCG: 100-230 ms for
   * {@code date} as a process, most of it the fork and exec a fresh QEMU translates anew), {@code
   * date} otherwise.
   */
  static void sync() {
    sync(RTC, NativeHelpers.isLoaded() ? NATIVE : program("date"));
  }

  /**
   * {@link #sync()} with the RTC file and the way of setting the clock given (tests pass setters
   * that cannot set a clock).
   *
   * @return whether the clock was stepped
   */
  static boolean sync(Path rtcFile, Setter setter) {
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
    long started = System.nanoTime();
    try {
      if (!setter.set(to)) {
        return false;
      }
    } catch (IOException e) {
      GuestAgent.log("cannot set the clock with " + setter + ": " + e);
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
    if (stepTo(System.currentTimeMillis(), to) >= 0) {
      // busybox date exits 0 even when it could not set the time: look at the clock itself
      GuestAgent.log(setter + " did not set the clock to " + to);
      return false;
    }
    GuestAgent.log(
        "clock stepped by "
            + (to * 1000 - now)
            + " ms to the RTC with "
            + setter
            + " in "
            + (System.nanoTime() - started) / 1_000_000
            + " ms");
    return true;
  }
}
