package dev.agentvm.guest.agent;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link GuestAgentTest} with the agent's native library loaded, as in the micro image: the serving
 * thread reads the port (here a FIFO) itself, and a frame that stops half-way is bounded by {@code
 * poll}, not by a reader thread's queue.
 */
class GuestAgentNativeTest extends GuestAgentTest {
  @TempDir static Path lib;

  @BeforeAll
  static void load() throws Exception {
    NativeLibrary.compileAndLoad(lib);
  }

  @AfterAll
  static void forget() {
    NativeHelpers.forget(); // the other tests in this JVM take the pure-Java paths
  }
}
