package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link GuestExchangesTest}'s exchanges with the agent's native library loaded, as in the micro
 * image: commands are started by one {@code posix_spawn} and watched by the worker alone (one
 * {@code poll} over the output pipes, a pidfd and a wake descriptor), not by pump and reaper
 * threads.
 */
class GuestExchangesNativeTest extends GuestExchangesTest {
  @TempDir static Path lib;

  @BeforeAll
  static void load() throws Exception {
    NativeLibrary.compileAndLoad(lib);
    // the path under test needs pidfd_open (Linux 5.3); without it the agent uses threads
    int fd = NativeHelpers.pidfdOpen(ProcessHandle.current().pid());
    assertTrue(fd >= 0, "pidfd_open on this kernel: " + fd);
    NativeHelpers.closeFd(fd);
  }

  @AfterAll
  static void forget() {
    NativeHelpers.forget(); // the other tests in this JVM take the pure-Java paths
  }
}
