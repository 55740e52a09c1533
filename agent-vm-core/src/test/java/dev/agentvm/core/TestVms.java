package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.List;
import java.util.UUID;

/** Shared pieces of the real-VM integration tests: the micro image, test names, leak checks. */
public final class TestVms {
  /** Every domain a test makes starts with this, so leftovers are recognisable and reapable. */
  public static final String PREFIX = "agentvm-test-";

  private static MicroImage image;

  private TestVms() {}

  public static synchronized MicroImage image() {
    if (image == null) {
      try {
        image = MicroImageBuilder.create().build();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return image;
  }

  public static BootSource boot() {
    MicroImage i = image();
    return new BootSource(i.kernel(), i.initramfs(), MicroImage.DEFAULT_CMDLINE);
  }

  public static String name(String what) {
    return PREFIX + what + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  /**
   * Starts {@code main} in a child JVM with this test run's class path, standard error merged into
   * standard output: for tests about processes that die or are signalled.
   */
  public static Process startJvm(Class<?> main, String... args) throws java.io.IOException {
    List<String> cmd =
        new java.util.ArrayList<>(
            List.of(
                java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp",
                System.getProperty("java.class.path"),
                main.getName()));
    cmd.addAll(List.of(args));
    return new ProcessBuilder(cmd).redirectErrorStream(true).start();
  }

  /** Destroys and undefines every test domain left by this or an earlier (crashed) run. */
  public static void reapTestDomains(LibvirtConnection conn) {
    for (String n : conn.domainNames()) {
      if (n.startsWith(PREFIX)) {
        conn.backend()
            .lookup(n)
            .ifPresent(
                d -> {
                  try {
                    d.destroy();
                  } catch (RuntimeException ignored) {
                    // not running
                  }
                  try {
                    d.undefine();
                  } catch (RuntimeException ignored) {
                    // transient, gone with the destroy
                  }
                });
      }
    }
  }

  /**
   * Asserts that nothing of the VM is left: no domain, no runtime directory (socket, console log).
   */
  public static void assertNothingLeft(LibvirtConnection conn, VMTemplate t) {
    assertFalse(conn.domainNames().contains(t.name()), "domain " + t.name() + " still defined");
    assertFalse(Files.exists(t.runDir()), "runtime dir left: " + t.runDir());
    assertFalse(Files.exists(t.agentSocket()), "socket left: " + t.agentSocket());
    assertFalse(Files.exists(t.consoleLog()), "console log left: " + t.consoleLog());
  }

  public static void assertNoTestDomains(LibvirtConnection conn) {
    assertEquals(List.of(), conn.domainNames().stream().filter(n -> n.startsWith(PREFIX)).toList());
  }
}
