package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.HostStorage;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RemoteLibvirtHost;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SnapshotManager} for a VM on another libvirt host ({@link RemoteLibvirtHost}, reached over
 * {@code qemu+tcp}): its disk is an overlay in that host's pool, so its snapshots are stored there;
 * only their metadata stays here.
 */
class RemoteSnapshotIT {
  private static final Duration AGENT = Duration.ofMinutes(2);
  private static RemoteLibvirtHost host;
  private static LibvirtConnection conn;

  @BeforeAll
  static void startHost() {
    host = RemoteLibvirtHost.start(8);
    conn = LibvirtConnection.open(host.uri());
  }

  @AfterAll
  static void stopHost() {
    RemoteLibvirtHost.stop(host, conn);
  }

  private static String sh(AgentClient a, String script) throws Exception {
    ExecResult r = a.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofSeconds(60)));
    assertEquals(0, r.exitCode(), script + ": " + r.stderrText());
    return r.stdoutText();
  }

  @Test
  void aVmThereIsSnapshottedIntoItsDiskThereAndRestored(@TempDir Path tmp) throws Exception {
    HostStorage storage = conn.hostStorage().orElseThrow();
    Path base = DiskImages.createExt4(tmp.resolve("base.qcow2"), 32L << 20, null);
    String name = TestVms.name("rsnap");
    Path overlay = storage.createOverlay(name + ".qcow2", storage.stage(base), 32L << 20);
    VMTemplate t =
        VMTemplate.builder(name)
            .boot(TestVms.boot())
            .disk(DiskAttachment.qcow2(overlay, "vda", "/data"))
            .build();
    try {
      try (VM vm = conn.define(t)) {
        vm.start();
        AgentClient a = vm.awaitAgent(AGENT);
        String pid = sh(a, SnapshotManagerIT.MARK).strip();
        SnapshotManager snaps = SnapshotManager.of(vm);
        SnapshotInfo s1 = snaps.create("s1", "before the change");
        assertEquals(SnapshotInfo.Kind.FULL, s1.kind());
        assertEquals(VMState.RUNNING, vm.state());

        a = vm.awaitAgent(AGENT);
        sh(a, SnapshotManagerIT.change(pid));
        long t0 = System.nanoTime();
        snaps.restore("s1", AGENT);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        a = vm.awaitAgent(AGENT);
        assertEquals(
            "one\nmem-one\n",
            sh(a, "cat /data/state.txt /tmp/mem.txt"),
            "disk and memory are back as they were, on that host");
        assertEquals("alive", sh(a, "kill -0 " + pid + " && echo alive").strip());
        System.out.printf("remote FULL snapshot restore to agent ready: %d ms%n", ms);

        SnapshotInfo s2 = snaps.create("s2", "child");
        assertEquals("s1", s2.parent());
        assertEquals(List.of(s1, s2), snaps.list());
        snaps.delete("s2");
        assertEquals(List.of(s1), snaps.list());
      }
      assertEquals(0, host.qemuProcesses(), "QEMU left on the host");
      assertTrue(!conn.domainNames().contains(name), "its definition (and snapshots) removed");
    } finally {
      storage.delete(name + ".qcow2");
    }
    assertEquals(
        List.of(),
        host.poolFiles().stream().filter(f -> f.startsWith(name)).toList(),
        "nothing of the VM left in the host's pool");
  }
}
