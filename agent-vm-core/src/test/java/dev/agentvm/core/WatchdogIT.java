package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.AgentVmPaths;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * kill -9 of a JVM that owns a running VM, and no other process opens a connection: its watchdog
 * reaps the VM within seconds.
 */
class WatchdogIT extends RealLibvirtTest {
  /**
   * Kills {@code child} with SIGKILL (no shutdown hook, no cleanup) and waits up to 60 s for its VM
   * and runtime directory to be gone, with no connection opened here; prints how long it took.
   */
  static void killAndAwaitReaped(
      LibvirtConnection conn, Process child, String name, Path runDir, String who)
      throws InterruptedException {
    long killed = System.nanoTime();
    child.destroyForcibly();
    assertTrue(child.waitFor(10, TimeUnit.SECONDS));
    while (conn.domainNames().contains(name) || Files.exists(runDir)) {
      assertTrue(System.nanoTime() - killed < 60_000_000_000L, "not reaped within 60 s");
      Thread.sleep(200);
    }
    System.out.printf(
        "%s: reaped %d ms after the kill%n", who, (System.nanoTime() - killed) / 1_000_000);
  }

  @Test
  void theWatchdogReapsAKilledJvmsVmWithoutAnyNewConnection() throws Exception {
    String name = TestVms.name("watched");
    Path runDir = AgentVmPaths.runDir(name);
    List<String> cmd =
        new ArrayList<>(
            List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp",
                System.getProperty("java.class.path"),
                OrphanMaker.class.getName(),
                name));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    pb.environment().put("AGENTVM_WATCHDOG", "on"); // the build turns it off for other tests
    Process child = pb.start();
    try {
      ReaperIT.awaitReady(child);
      String marker =
          "OwnerWatchdog " + dev.agentvm.internal.ProcessOwners.MACHINE + ":" + child.pid() + "@";
      List<ProcessHandle> watchdogs = List.of();
      for (int i = 0; i < 50 && watchdogs.isEmpty(); i++) {
        watchdogs =
            ProcessHandle.allProcesses()
                .filter(p -> p.info().commandLine().map(c -> c.contains(marker)).orElse(false))
                .toList();
        Thread.sleep(100);
      }
      assertEquals(1, watchdogs.size(), "one watchdog for the child: " + watchdogs);
      assertTrue(conn.domainNames().contains(name));

      killAndAwaitReaped(conn, child, name, runDir, "WatchdogIT");
      assertTrue(watchdogs.get(0).onExit().get(30, TimeUnit.SECONDS) != null);
      assertFalse(watchdogs.get(0).isAlive(), "the watchdog ends after its pass");
    } finally {
      child.destroyForcibly();
    }
  }
}
