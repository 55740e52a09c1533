package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.Reaper;
import dev.agentvm.core.RemoteLibvirtHost;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.SnapshotException;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.internal.AgentVmPaths;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link MemoryImage} on another libvirt host ({@link RemoteLibvirtHost}, reached over {@code
 * qemu+tcp}): the memory is saved into that host's pool and clones are restored there, each with
 * its own identity; a process that dies leaves it to that host's reap.
 */
class RemoteMemoryImageIT {
  private static final Duration AGENT = Duration.ofMinutes(2);
  private static RemoteLibvirtHost host;
  private static LibvirtConnection conn;

  @BeforeAll
  static void startHost() {
    host = RemoteLibvirtHost.start(2);
    conn = LibvirtConnection.open(host.uri());
  }

  @AfterAll
  static void stopHost() {
    RemoteLibvirtHost.stop(host, conn);
  }

  private static List<String> images() {
    return host.poolFiles().stream().filter(f -> f.startsWith("mi.")).toList();
  }

  private static String sh(AgentClient a, String script) throws Exception {
    ExecResult r = a.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofSeconds(60)));
    assertEquals(0, r.exitCode(), script + ": " + r.stderrText());
    return r.stdoutText().strip();
  }

  private static Path imageDir(String what) {
    return AgentVmPaths.stateRoot().resolve("images").resolve(TestVms.name(what));
  }

  @Test
  void clonesOfAnImageOnTheHostAreRestoredThereEachWithItsOwnIdentity(@TempDir Path tmp)
      throws Exception {
    Path dir = imageDir("rmi");
    VMTemplate t = VMTemplate.builder(TestVms.name("rmi-src")).boot(TestVms.boot()).build();
    try (MemoryImage image = MemoryImage.capture(conn, t, dir, AGENT)) {
      assertEquals(1, images().size(), "the memory is in the host's pool: " + host.poolFiles());
      assertEquals(image.file().getFileName().toString(), images().get(0));
      assertFalse(Files.exists(dir.resolve("memory.save")), "nothing of it here");
      assertEquals(0, image.sizeBytes(), "not read from here");
      try (LibvirtConnection local = LibvirtConnection.open()) {
        SnapshotException wrongHost =
            assertThrows(
                SnapshotException.class,
                () -> image.restore(local, TestVms.name("rmi-here"), Map.of(), AGENT));
        assertTrue(wrongHost.getMessage().contains(host.uri()), wrongHost.getMessage());
      }
      String a = TestVms.name("rmi-a");
      String b = TestVms.name("rmi-b");
      try (VM ca = image.restore(conn, a, Map.of(), AGENT);
          VM cb = image.restore(conn, b, Map.of(), AGENT)) {
        AgentClient aa = ca.awaitAgent(AGENT);
        AgentClient ab = cb.awaitAgent(AGENT);
        assertEquals(a, sh(aa, "hostname"));
        assertEquals(b, sh(ab, "hostname"));
        assertNotEquals(sh(aa, "cat /etc/machine-id"), sh(ab, "cat /etc/machine-id"));
        sh(aa, "echo only-a > /tmp/f");
        assertEquals("none", sh(ab, "cat /tmp/f 2>/dev/null || echo none"));
        assertEquals(2, host.qemuProcesses());
      }
      assertEquals(0, host.qemuProcesses());
      assertEquals(1, images().size(), "clones closed, the image kept");
    }
    assertEquals(List.of(), images(), "closing the image removes it from the host");
    assertFalse(Files.exists(dir));

    VMTemplate withDisk =
        t.newBuilder().disk(DiskAttachment.qcow2(dir.resolve("d.qcow2"), "vda", "/data")).build();
    VMTemplate withShare = t.newBuilder().share(new ShareAttachment(tmp, "ws", false)).build();
    for (Object[] refused :
        new Object[][] {
          {withDisk, imageDir("rmi-disk"), "a writable disk"},
          {withShare, imageDir("rmi-share"), "a share"},
          {t, tmp.resolve("elsewhere"), "outside"}
        }) {
      Path d = (Path) refused[1];
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class,
              () -> MemoryImage.capture(conn, (VMTemplate) refused[0], d, AGENT));
      assertTrue(e.getMessage().contains(host.uri()), e.getMessage());
      assertTrue(e.getMessage().contains((String) refused[2]), e.getMessage());
      assertFalse(Files.exists(d), "refused before anything is made");
    }
    assertEquals(0, host.qemuProcesses());
  }

  @Test
  void anImageWhoseProcessDiedIsRemovedByThatHostsReapOnly() throws Exception {
    Path dir = imageDir("rmi-dead");
    Process child = TestVms.startJvm(CaptureAndDie.class, host.uri(), dir.toString());
    String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(child.waitFor(3, TimeUnit.MINUTES), out);
    assertTrue(out.contains("READY"), out);
    String ready = out.substring(out.indexOf("READY ") + 6).lines().findFirst().orElse("");
    String file = ready.substring(ready.lastIndexOf('/') + 1).strip();
    assertTrue(images().contains(file), out + host.poolFiles());

    // this machine's reap leaves an image of another host alone, and its record with it
    try (LibvirtConnection local = LibvirtConnection.open()) {
      Reaper.Report r = Reaper.reapOrphans(local, Duration.ofSeconds(5));
      assertTrue(Files.exists(dir.resolve(MemoryImage.HOST_RECORD)), r.toString());
    }
    assertTrue(images().contains(file));

    try {
      Reaper.Report r = Reaper.reapOrphans(conn, Duration.ofSeconds(5));
      assertFalse(images().contains(file), "removed from the host: " + r);
      assertFalse(Files.exists(dir), "and its record here");
    } finally {
      conn.hostStorage().orElseThrow().delete(file);
      dev.agentvm.internal.Trees.delete(dir);
    }
  }
}
