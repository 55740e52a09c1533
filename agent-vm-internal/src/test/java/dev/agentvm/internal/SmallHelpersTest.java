package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SmallHelpersTest {
  @TempDir Path tmp;

  @Test
  void fileHashMatchesByteHash() throws IOException {
    byte[] data = new byte[200_000];
    for (int i = 0; i < data.length; i++) {
      data[i] = (byte) (i * 31);
    }
    Path f = Files.write(tmp.resolve("f"), data);
    assertEquals(Hashing.sha256Hex(data), Hashing.sha256Hex(f));
    assertThrows(IOException.class, () -> Hashing.sha256Hex(tmp.resolve("missing")));
  }

  @Test
  void ownersOfOtherFormatsAreLeftAlone() {
    assertTrue(ProcessOwners.isAlive(ProcessOwners.CURRENT), "this process");
    assertFalse(ProcessOwners.isAlive("2147483646@2020-01-01T00:00:00Z"), "no such process");
    assertTrue(ProcessOwners.isAlive("not-ours"));
    assertTrue(ProcessOwners.isAlive("x@y"), "a pid that is no number is not ours to judge");
    assertFalse(
        ProcessOwners.isAlive(ProcessHandle.current().pid() + "@1999-01-01T00:00:00Z"),
        "a reused pid is another process");
  }

  @Test
  void cacheRootFollowsItsSetting() {
    String old = System.getProperty(Setting.CACHE_DIR.property());
    try {
      System.setProperty(Setting.CACHE_DIR.property(), tmp.toString());
      assertEquals(tmp, AgentVmPaths.cacheRoot());
      System.clearProperty(Setting.CACHE_DIR.property());
      assertTrue(AgentVmPaths.cacheRoot().endsWith("agent-vm"));
    } finally {
      if (old != null) {
        System.setProperty(Setting.CACHE_DIR.property(), old);
      }
    }
  }

  @Test
  void aRegistrationThatWasClosedIsNotRunAtExit() throws Exception {
    ShutdownHooks.Registration r = ShutdownHooks.register("test resource", () -> {});
    r.close();
    r.close(); // twice is harmless
    assertFalse(ShutdownHooks.isShuttingDown());
  }
}
