package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Clones started from one saved memory image, on real VMs. */
class MemoryImageIT extends RealLibvirtTest {
  private static final Duration AGENT = Duration.ofSeconds(90);

  private static String sh(AgentClient a, String script) throws Exception {
    ExecResult r = a.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofSeconds(30)));
    assertEquals(0, r.exitCode(), script + ": " + r.stderrText());
    return r.stdoutText().trim();
  }

  private static Path sharedDir(Path parent, String name) throws Exception {
    Path d = Files.createDirectories(parent.resolve(name));
    Files.setPosixFilePermissions(d, PosixFilePermissions.fromString("rwxrwxrwx"));
    return d;
  }

  @Test
  void clonesAreIndependentHaveTheirOwnIdentityAndMountTheirOwnShares() throws Exception {
    Path dir = AgentVmPaths.stateRoot().resolve("test-images").resolve(TestVms.name("img"));
    Path shares = AgentVmPaths.stateRoot().resolve("test-images").resolve(dir.getFileName() + "-s");
    VMTemplate template =
        VMTemplate.builder(TestVms.name("tmpl"))
            .boot(TestVms.boot())
            .share(new ShareAttachment(sharedDir(shares, "template"), "ws", false))
            .build();
    try (MemoryImage image = MemoryImage.capture(conn, template, dir, AGENT)) {
      assertFalse(conn.domainNames().contains(template.name()), "the capture VM is gone");
      assertTrue(image.sizeBytes() > 1_000_000);
      Path dirA = sharedDir(shares, "a");
      Path dirB = sharedDir(shares, "b");
      String nameA = TestVms.name("clone-a");
      String nameB = TestVms.name("clone-b");
      long t0 = System.nanoTime();
      try (VM a = image.restore(conn, nameA, Map.of("ws", dirA), AGENT);
          VM b = image.restore(conn, nameB, Map.of("ws", dirB), AGENT)) {
        System.out.printf(
            "capture %d ms, two clones ready in %d ms%n",
            image.captureTime().toMillis(), (System.nanoTime() - t0) / 1_000_000);
        assertEquals(VMState.RUNNING, a.state());
        assertNotEquals(a.uuid(), b.uuid());
        AgentClient ca = a.awaitAgent(AGENT);
        AgentClient cb = b.awaitAgent(AGENT);
        // each answers its own agent, with its own identity
        assertEquals(nameA, sh(ca, "hostname"));
        assertEquals(nameB, sh(cb, "hostname"));
        assertNotEquals(sh(ca, "cat /etc/machine-id"), sh(cb, "cat /etc/machine-id"));
        // the same memory, but never the same random numbers
        assertNotEquals(
            sh(ca, "head -c 32 /dev/urandom | od -An -tx1"),
            sh(cb, "head -c 32 /dev/urandom | od -An -tx1"));
        // no cross-talk
        sh(ca, "echo only-a > /tmp/marker");
        assertEquals("absent", sh(cb, "test -e /tmp/marker && echo present || echo absent"));
        // shares are mounted after the restore, each clone its own directory
        ca.mount(new MountSpec("ws", "/mnt/ws", false), Duration.ofSeconds(30));
        cb.mount(new MountSpec("ws", "/mnt/ws", false), Duration.ofSeconds(30));
        sh(ca, "echo from-a > /mnt/ws/out.txt");
        sh(cb, "echo from-b > /mnt/ws/out.txt");
        assertEquals("from-a\n", Files.readString(dirA.resolve("out.txt")));
        assertEquals("from-b\n", Files.readString(dirB.resolve("out.txt")));

        // QEMU cannot save a guest with a mounted 9p share: the error says what to do
        SnapshotException e =
            assertThrows(SnapshotException.class, () -> a.saveMemory(dir.resolve("again.save")));
        assertTrue(e.getMessage().contains("9p share is mounted"), e.getMessage());
        assertEquals(VMState.RUNNING, a.state(), "a refused save leaves the VM running");
      }
      assertFalse(conn.domainNames().contains(nameA));
      assertFalse(Files.exists(AgentVmPaths.runDir(nameA)));
      assertFalse(Files.exists(AgentVmPaths.runDir(nameB)));
    } finally {
      Trees.delete(shares);
    }
    assertFalse(Files.exists(dir), "closing the image deletes it");
    Files.deleteIfExists(dir.getParent()); // empty unless another run is under way
  }
}
