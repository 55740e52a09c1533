package dev.agentvm.execution.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RemoteLibvirtHost;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sandboxes on another libvirt host, reached only through libvirt's remote protocol ({@link
 * RemoteLibvirtHost}: a second daemon in its own network and mount namespaces that cannot see this
 * machine's files). Their overlays and memory images live in the host's pool; their records here.
 */
class RemoteSandboxIT {
  private static RemoteLibvirtHost host;
  private static LibvirtConnection conn;

  private final SandboxSpec spec =
      SandboxSpec.defaults()
          .withNamePrefix(TestVms.PREFIX + "rsb-")
          .withCommandTimeout(Duration.ofSeconds(60));

  @BeforeAll
  static void startHost() {
    host = RemoteLibvirtHost.start(3);
    conn = LibvirtConnection.open(host.uri());
  }

  @AfterAll
  static void stopHost() {
    RemoteLibvirtHost.stop(host, conn);
  }

  private static String run(Sandbox sb, String script) throws Exception {
    ExecResult r = sb.exec(ExecRequest.script(script, "sh"));
    assertEquals(0, r.exitCode(), r.toString());
    return r.stdoutText().strip();
  }

  private static List<String> sandboxFiles() {
    return host.poolFiles().stream().filter(f -> f.startsWith("sbx.")).toList();
  }

  @Test
  void aSandboxOnAnotherHostRunsPausesResumesElsewhereChecksPointsAndLeavesNothing(
      @TempDir Path root) throws Exception {
    String id;
    try (Sandboxes sandboxes = Sandboxes.open(conn, root)) {
      Sandbox sb = sandboxes.create(spec);
      id = sb.id();
      sb.files().write("/workspace/note.txt", "written here\n".getBytes(UTF_8));
      assertEquals("written here", run(sb, "cat /workspace/note.txt"));
      assertEquals(1, host.qemuProcesses());
      List<String> files = sandboxFiles();
      assertEquals(1, files.size(), "its top overlay, in the host's pool: " + files);
      assertTrue(files.get(0).endsWith(".qcow2"), files.toString());
      assertFalse(Files.exists(root.resolve(id).resolve("disk.qcow2")), "no disk here");

      sb.pause();
      assertEquals(SandboxState.PAUSED, sb.state());
      assertEquals(0, host.qemuProcesses(), "paused: no QEMU on the host");
      assertTrue(
          sandboxFiles().stream().anyMatch(f -> f.endsWith("." + id + ".paused.save")),
          "its memory is on the host: " + sandboxFiles());
    }

    // another Sandboxes object on the same records (as another process would): resumes it there
    try (Sandboxes other = Sandboxes.open(conn, root)) {
      // it makes sandboxes too: the staged empty workspace, seen again after the pool's refresh
      try (Sandbox second = other.create(spec)) {
        assertEquals("fresh", run(second, "[ ! -e /workspace/note.txt ] && echo fresh"));
      }
      Sandbox sb = other.connect(id);
      sb.resume();
      assertEquals("written here", run(sb, "cat /workspace/note.txt"));
      assertTrue(
          sandboxFiles().stream().noneMatch(f -> f.endsWith(".paused.save")),
          "the paused memory is deleted once resumed: " + sandboxFiles());

      sb.checkpoint("before");
      sb.files().write("/workspace/later.txt", "later\n".getBytes(UTF_8));
      sb.rollback("before");
      assertFalse(sb.files().exists("/workspace/later.txt"), "rolled back");
      assertEquals("written here", run(sb, "cat /workspace/note.txt"));
      sb.checkpoint("before"); // replaced in place on a host
      assertEquals(List.of("before"), sb.checkpoints());

      // forks on a remote host: SandboxHostsIT
      sb.close();
      assertThrows(NoSuchSandboxException.class, () -> other.connect(id));
    }
    assertEquals(0, host.qemuProcesses(), "QEMU left on the host");
    assertEquals(List.of(), sandboxFiles(), "files left in the host's pool");
    TestVms.assertNoTestDomains(conn);
  }

  @Test
  void aRootHoldsOneHostsSandboxes(@TempDir Path root) {
    Sandboxes.open(conn, root).close();
    assertTrue(Files.exists(root.resolve(Sandboxes.HOST_FILE)));
    try (LibvirtConnection local = LibvirtConnection.open()) {
      SandboxException e = assertThrows(SandboxException.class, () -> Sandboxes.open(local, root));
      assertTrue(e.getMessage().contains(conn.uri()), e.getMessage());
    }
  }

  @Test
  void aDeadClientsSandboxesAreReapedOnTheHostToo(@TempDir Path root) throws Exception {
    String id;
    try (Sandboxes sandboxes = Sandboxes.open(conn, root)) {
      Sandbox sb = sandboxes.create(spec.withPausedRetention(Duration.ofSeconds(1)));
      id = sb.id();
      sb.pause();
    }
    assertFalse(sandboxFiles().isEmpty());
    Thread.sleep(1100);
    try (Sandboxes later = Sandboxes.open(conn, root)) {
      assertEquals(1, later.reapedAtOpen(), "its retention ended");
      assertThrows(NoSuchSandboxException.class, () -> later.connect(id));
    }
    assertEquals(List.of(), sandboxFiles(), "files left in the host's pool");
  }
}
