package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * The agent's native library for tests on the build machine: compiled from the image module's
 * source with this machine's cc (the image build does the same for the guest) and loaded as the
 * agent loads it. A test that loads it calls {@link NativeHelpers#forget()} after itself, so that
 * the other tests in the JVM take the pure-Java paths; as an extension
 * ({@code @ExtendWith(NativeLibrary.class)}) it does both for a test class.
 */
final class NativeLibrary implements BeforeAllCallback, AfterAllCallback {
  private static final ExtensionContext.Namespace NS =
      ExtensionContext.Namespace.create(NativeLibrary.class);

  /** As an extension: the library compiled and loaded for a test class, forgotten after it. */
  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    Path dir = Files.createTempDirectory("agentvm-test-native");
    context.getStore(NS).put("dir", dir);
    compileAndLoad(dir);
  }

  @Override
  public void afterAll(ExtensionContext context) throws Exception {
    NativeHelpers.forget(); // the other tests in this JVM take the pure-Java paths
    Path dir = context.getStore(NS).remove("dir", Path.class);
    if (dir != null) {
      Files.deleteIfExists(dir.resolve("libagentvm-guest.so"));
      Files.deleteIfExists(dir);
    }
  }

  static final Path SOURCE =
      Path.of("../agent-vm-image/src/main/resources/dev/agentvm/image/native/agentvm-guest.c");

  /** Compiles the library into {@code dir} and loads it. */
  static void compileAndLoad(Path dir) throws Exception {
    Path lib = dir.resolve("libagentvm-guest.so");
    Path jdk = Path.of(System.getProperty("java.home"));
    Process cc =
        new ProcessBuilder(
                "cc",
                "-O2",
                "-fPIC",
                "-shared",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-I" + jdk.resolve("include"),
                "-I" + jdk.resolve("include/linux"),
                "-o",
                lib.toString(),
                SOURCE.toString())
            .redirectErrorStream(true)
            .start();
    String said = new String(cc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, cc.waitFor(), "cc (setup-host.sh installs gcc): " + said);
    System.setProperty(NativeHelpers.PROPERTY, lib.toString());
    try {
      assertTrue(NativeHelpers.load(), "the library loads and binds its methods");
    } finally {
      System.clearProperty(NativeHelpers.PROPERTY);
    }
  }
}
