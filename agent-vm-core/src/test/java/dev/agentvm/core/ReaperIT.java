package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.ProcessOwners;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** kill -9 of a JVM that owns a running VM: the next reaping pass removes all it left. */
class ReaperIT extends RealLibvirtTest {
  @Test
  void reapsTheVmOfAKilledJvmAndLeavesLiveAndForeignDomainsAlone() throws Exception {
    String orphanName = TestVms.name("orphan");
    Path orphanRun = AgentVmPaths.runDir(orphanName);
    Process child = startOrphanMaker(orphanName);
    VMTemplate live = VMTemplate.builder(TestVms.name("live")).boot(TestVms.boot()).build();
    String foreign = TestVms.name("foreign");
    try (VM liveVm = conn.define(live)) {
      // a domain someone else defined: no agent-vm metadata (the customizer takes it out)
      conn.backend()
          .define(
              VMTemplate.builder(foreign)
                  .boot(TestVms.boot())
                  .customizer(
                      doc -> {
                        var meta = doc.getElementsByTagName("metadata").item(0);
                        meta.getParentNode().removeChild(meta);
                      })
                  .build(),
              VirtType.QEMU);
      awaitReady(child);
      child.destroyForcibly(); // SIGKILL: no shutdown hook, no cleanup
      assertTrue(child.waitFor(10, TimeUnit.SECONDS));
      assertTrue(
          conn.domainNames().contains(orphanName), "the orphan is still there before reaping");
      assertTrue(Files.exists(orphanRun.resolve("agent.sock")));

      Reaper.Report r = Reaper.reapOrphans(conn, Duration.ofSeconds(20));
      System.out.println("reaper: " + r);
      assertEquals(List.of(), r.failures());
      assertTrue(r.orphans() >= 1 && r.removed() >= 1, r.toString());
      assertTrue(r.stoppedGracefully() >= 1, "the orphan was asked to power off first: " + r);
      assertFalse(conn.domainNames().contains(orphanName), "orphan domain left");
      assertFalse(Files.exists(orphanRun), "orphan runtime directory left");

      assertTrue(
          conn.domainNames().contains(foreign), "a domain without our metadata must be left alone");
      assertTrue(
          conn.domainNames().contains(live.name()), "a VM whose owner lives must be left alone");
      assertEquals(VMState.DEFINED, liveVm.state());
    } finally {
      child.destroyForcibly();
      conn.backend().lookup(foreign).ifPresent(d -> d.undefine());
    }
    TestVms.assertNothingLeft(conn, live);
  }

  @Test
  void openingAConnectionReapsOrphans() throws Exception {
    String orphanName = TestVms.name("orphan2");
    Process child = startOrphanMaker(orphanName);
    try {
      awaitReady(child);
      child.destroyForcibly();
      assertTrue(child.waitFor(10, TimeUnit.SECONDS));
      assertTrue(conn.domainNames().contains(orphanName));
      try (LibvirtConnection fresh = LibvirtConnection.open()) {
        assertFalse(fresh.domainNames().contains(orphanName), "open() reaps what a dead JVM left");
      }
      assertFalse(Files.exists(AgentVmPaths.runDir(orphanName)));
    } finally {
      child.destroyForcibly();
    }
  }

  private static Process startOrphanMaker(String name) throws java.io.IOException {
    return TestVms.startJvm(OrphanMaker.class, name);
  }

  static void awaitReady(Process child) throws java.io.IOException {
    BufferedReader out =
        new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
    String line;
    StringBuilder seen = new StringBuilder();
    while ((line = out.readLine()) != null && !line.equals("READY")) {
      seen.append(line).append('\n');
    }
    assertEquals("READY", line, "child output: " + seen);
  }

  @Test
  void ownerLivenessUsesPidAndStartTime() {
    assertTrue(ProcessOwners.isAlive(ProcessOwners.CURRENT), "this process");
    assertFalse(
        ProcessOwners.isAlive(ProcessHandle.current().pid() + "@1999-01-01T00:00:00Z"),
        "reused pid");
    assertFalse(ProcessOwners.isAlive("2147483646@2020-01-01T00:00:00Z"), "no such process");
    assertTrue(ProcessOwners.isAlive("not-ours"), "unknown formats are left alone");
  }
}
