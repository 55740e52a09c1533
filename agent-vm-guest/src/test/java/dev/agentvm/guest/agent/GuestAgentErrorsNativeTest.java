package dev.agentvm.guest.agent;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link GuestAgentErrorsTest}'s refusals with the agent's native library loaded, as in the micro
 * image: a command is looked up by the library first, and the Java lookup only names what is wrong.
 */
class GuestAgentErrorsNativeTest extends GuestAgentErrorsTest {
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
