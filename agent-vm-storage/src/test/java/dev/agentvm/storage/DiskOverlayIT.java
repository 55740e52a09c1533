package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.Trees;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** qcow2 overlays on a read-only base, in a real VM. */
class DiskOverlayIT extends RealLibvirtTest {
  @TempDir Path tmp;

  @Test
  void guestSeesTheBaseFilesAndTheOverriddenSizeAndNeverWritesTheBase() throws Exception {
    Path baseDir =
        Files.createTempDirectory(
            AgentVmPaths.stateRoot(),
            "test-base-",
            java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x")));
    try {
      Path content = Files.createDirectories(tmp.resolve("content"));
      Files.writeString(content.resolve("from-base.txt"), "base content\n");
      Path base = DiskImages.createExt4(baseDir.resolve("base.qcow2"), 32L << 20, content);
      String baseHash = Sha256.of(base);
      assertEquals(32L << 20, DiskImages.info(base).virtualSize());
      assertFalse(Files.isWritable(base) && !isRoot(), "base is read-only");

      String name = TestVms.name("overlay");
      Path overlay = AgentVmPaths.runDir(name).resolve("vda.qcow2");
      long size = 96L << 20;
      DiskImages.createOverlay(base, overlay, size);
      DiskImages.Info info = DiskImages.info(overlay);
      assertEquals(size, info.virtualSize());
      assertEquals(base, info.backingFile().orElseThrow());
      assertThrows(
          IllegalArgumentException.class,
          () -> DiskImages.createOverlay(base, tmp.resolve("small.qcow2"), 1L << 20));

      VMTemplate t =
          VMTemplate.builder(name)
              .boot(TestVms.boot())
              .disk(DiskAttachment.qcow2(overlay, "vda", "/data"))
              .build();
      try (VM vm = conn.define(t)) {
        vm.start();
        AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
        ExecResult r =
            agent.exec(
                ExecRequest.script(
                        "cat /data/from-base.txt; cat /sys/block/vda/size;"
                            + " echo new > /data/new.txt && sync && cat /data/new.txt",
                        "sh")
                    .withTimeout(Duration.ofSeconds(30)));
        assertEquals(0, r.exitCode(), r.stderrText() + Files.readString(vm.consoleLog()));
        String[] lines = r.stdoutText().split("\n", -1);
        assertEquals("base content", lines[0]);
        // the size the live guest sees, in 512-byte sectors: the override took effect
        assertEquals(size / 512, Long.parseLong(lines[1].trim()));
        assertEquals("new", lines[2]);
      }
      assertFalse(Files.exists(overlay), "the overlay goes with the VM");
      assertEquals(baseHash, Sha256.of(base), "the base image was never written");
      TestVms.assertNothingLeft(conn, t);
    } finally {
      Trees.delete(baseDir);
    }
  }

  private static boolean isRoot() {
    return "root".equals(System.getProperty("user.name"));
  }
}
