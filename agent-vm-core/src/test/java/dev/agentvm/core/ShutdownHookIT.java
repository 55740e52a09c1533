package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.AgentVmPaths;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** SIGTERM to a JVM that owns a running VM: the library's shutdown hook stops and removes it. */
class ShutdownHookIT extends RealLibvirtTest {
  @Test
  void sigtermStopsTheVmGracefullyAndRemovesItWithoutTheReaper() throws Exception {
    String name = TestVms.name("sigterm");
    Process child = TestVms.startJvm(OrphanMaker.class, name);
    BufferedReader out =
        new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
    StringBuilder seen = new StringBuilder();
    String line;
    while ((line = out.readLine()) != null && !line.equals("READY")) {
      seen.append(line).append('\n');
    }
    assertEquals("READY", line, seen.toString());
    assertTrue(conn.domainNames().contains(name));
    long t0 = System.nanoTime();
    // Process.destroy() would also close our end of its output; send the signal by hand
    assertEquals(
        0, new ProcessBuilder("kill", "-TERM", Long.toString(child.pid())).start().waitFor());
    assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child exits");
    while ((line = out.readLine()) != null) {
      seen.append(line).append('\n');
    }
    long ms = (System.nanoTime() - t0) / 1_000_000;
    System.out.printf("child exited %d ms after SIGTERM%n", ms);
    assertFalse(conn.domainNames().contains(name), "no domain left: " + seen);
    assertFalse(Files.exists(AgentVmPaths.runDir(name)), "no runtime directory left");
    assertTrue(seen.toString().contains("shut down gracefully"), "graceful first: " + seen);
  }
}
