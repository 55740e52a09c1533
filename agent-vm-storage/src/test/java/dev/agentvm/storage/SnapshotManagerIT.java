package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.SnapshotException;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.Trees;
import dev.agentvm.protocol.MountSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** SnapshotManager on real VMs with a qcow2 overlay disk. */
class SnapshotManagerIT extends RealLibvirtTest {
  private static final Duration AGENT = Duration.ofSeconds(90);
  private static Path baseDir;
  private static Path base;

  @BeforeAll
  static void makeBase() throws Exception {
    baseDir =
        Files.createTempDirectory(
            AgentVmPaths.stateRoot(),
            "test-base-",
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
    base = DiskImages.createExt4(baseDir.resolve("base.qcow2"), 32L << 20, null);
  }

  @AfterAll
  static void removeBase() throws Exception {
    Trees.delete(baseDir);
  }

  private static VMTemplate.Builder withDisk(String what) {
    String name = TestVms.name(what);
    Path overlay = AgentVmPaths.runDir(name).resolve("vda.qcow2");
    DiskImages.createOverlay(base, overlay, 0);
    return VMTemplate.builder(name)
        .boot(TestVms.boot())
        .disk(DiskAttachment.qcow2(overlay, "vda", "/data"));
  }

  /**
   * A guest script: a file on disk, a file in memory (tmpfs), and a process outside the agent's
   * control, whose pid it prints.
   */
  static final String MARK =
      "echo one > /data/state.txt; echo mem-one > /tmp/mem.txt; sync;"
          + " setsid sh -c 'while true; do sleep 1; done' >/dev/null 2>&1 & echo $!";

  /** Changes both files of {@link #MARK} and kills its process. */
  static String change(String pid) {
    return "echo two > /data/state.txt; echo mem-two > /tmp/mem.txt; sync; kill " + pid;
  }

  private static ExecResult sh(AgentClient a, String script) throws Exception {
    ExecResult r = a.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofSeconds(30)));
    assertEquals(0, r.exitCode(), script + ": " + r.stderrText());
    return r;
  }

  @Test
  void fullSnapshotRestoresFilesMemoryAndRunningProcessesExactly() throws Exception {
    VMTemplate t = withDisk("snap").build();
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient a = vm.awaitAgent(AGENT);
      String pid = sh(a, MARK).stdoutText().trim();
      SnapshotManager snaps = SnapshotManager.of(vm);
      SnapshotInfo s1 = snaps.create("s1", "before the change");
      assertEquals(SnapshotInfo.Kind.FULL, s1.kind());
      assertEquals("", s1.parent());
      assertEquals(VMState.RUNNING, vm.state(), "a snapshot leaves the VM running");

      a = vm.awaitAgent(AGENT);
      sh(a, change(pid));
      assertEquals("two\nmem-two\n", sh(a, "cat /data/state.txt /tmp/mem.txt").stdoutText());

      long t0 = System.nanoTime();
      snaps.restore("s1", AGENT);
      long restoreMs = (System.nanoTime() - t0) / 1_000_000;
      a = vm.awaitAgent(AGENT);
      assertEquals(
          "one\nmem-one\n",
          sh(a, "cat /data/state.txt /tmp/mem.txt").stdoutText(),
          "disk and memory are back as they were");
      assertEquals(
          "alive",
          sh(a, "kill -0 " + pid + " && echo alive").stdoutText().trim(),
          "the background process runs again");
      System.out.printf("FULL snapshot restore to agent ready: %d ms%n", restoreMs);

      SnapshotInfo s2 = snaps.create("s2", "child");
      assertEquals("s1", s2.parent(), "the parent is the snapshot the VM was restored to");

      // metadata lives on disk: a VM object made from the domain alone (as a new JVM would)
      // finds the same snapshots; closing it removes the VM, as its new owner
      try (VM again = conn.attach(t.name())) {
        assertEquals(List.of(s1, s2), SnapshotManager.of(again).list());
        assertEquals(t.disks(), again.template().disks());
        SnapshotManager.of(again).restore("s1", AGENT);
        assertEquals("one", sh(again.awaitAgent(AGENT), "cat /data/state.txt").stdoutText().trim());
      }
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void errorsSayWhatIsWrong() throws Exception {
    VMTemplate t = withDisk("snaperr").build();
    Path share = AgentVmPaths.runDir(t.name()).resolve("share");
    Files.createDirectories(share);
    Files.setPosixFilePermissions(share, PosixFilePermissions.fromString("rwxrwxrwx"));
    t = t.newBuilder().share(new ShareAttachment(share, "ws", false)).build();
    try (VM vm = conn.define(t)) {
      SnapshotManager snaps = SnapshotManager.of(vm);
      assertThrows(IllegalArgumentException.class, () -> snaps.create("../x", ""));
      // stopped VM: a disk-only snapshot
      SnapshotInfo d1 = snaps.create("d1", "empty disk");
      assertEquals(SnapshotInfo.Kind.DISK, d1.kind());
      SnapshotException clash =
          assertThrows(SnapshotException.class, () -> snaps.create("d1", "again"));
      assertTrue(
          clash.getMessage().contains("already has a snapshot named d1"), clash.getMessage());
      SnapshotException missing =
          assertThrows(SnapshotException.class, () -> snaps.restore("nope", AGENT));
      assertTrue(missing.getMessage().contains("[d1]"), missing.getMessage());

      vm.start();
      AgentClient a = vm.awaitAgent(AGENT);
      sh(a, "echo written > /data/after.txt; sync");
      a.mount(new MountSpec("ws", "/mnt/ws", false), Duration.ofSeconds(30));
      SnapshotException mounted =
          assertThrows(SnapshotException.class, () -> snaps.create("m1", "with 9p mounted"));
      assertTrue(mounted.getMessage().contains("9p share is mounted"), mounted.getMessage());
      assertEquals(List.of("d1"), snaps.list().stream().map(SnapshotInfo::name).toList());

      // restoring a disk snapshot stops the VM and puts the disk back
      snaps.restore("d1", AGENT);
      assertEquals(VMState.STOPPED, vm.state());
      vm.start();
      a = vm.awaitAgent(AGENT);
      assertEquals(
          "gone", sh(a, "test -e /data/after.txt && echo there || echo gone").stdoutText().trim());
      snaps.delete("d1");
      assertEquals(List.of(), snaps.list());
      assertThrows(SnapshotException.class, () -> snaps.delete("d1"));
    }
    TestVms.assertNothingLeft(conn, t);

    VMTemplate diskless = VMTemplate.builder(TestVms.name("nodisk")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(diskless)) {
      SnapshotException noDisk =
          assertThrows(SnapshotException.class, () -> SnapshotManager.of(vm).create("x", ""));
      assertTrue(noDisk.getMessage().contains("no writable qcow2 disk"), noDisk.getMessage());
    }
    assertNotEquals(null, base);
    assertFalse(conn.domainNames().contains(diskless.name()));
  }
}
