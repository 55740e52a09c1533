package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.ShutdownResult;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.internal.AgentVmPaths;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * A user-supplied disk image (Debian 12 with systemd and the agent's service unit, made by the
 * documented recipe scripts/make-debian-disk.sh) boots and serves the agent like the micro image.
 */
class DiskImageBootIT extends RealLibvirtTest {
  /** Builds the disk once per recipe and micro image; cached like the micro image. */
  private static Path debianDisk(MicroImage micro) throws Exception {
    Path script = Path.of("..", "scripts", "make-debian-disk.sh").toAbsolutePath().normalize();
    Path unit =
        Path.of(
                "..",
                "agent-vm-image/src/main/resources/dev/agentvm/image/systemd/agentvm-agent.service")
            .toAbsolutePath()
            .normalize();
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    md.update(Files.readAllBytes(script));
    md.update(Files.readAllBytes(unit));
    md.update(micro.directory().getFileName().toString().getBytes(StandardCharsets.UTF_8));
    String key = HexFormat.of().formatHex(md.digest()).substring(0, 16);
    Path disks = MicroImageBuilder.defaultCacheRoot().resolve("disks");
    Path disk = disks.resolve("debian-agent-" + key + ".qcow2");
    if (!Files.exists(disk)) {
      Process p =
          new ProcessBuilder(script.toString(), disk.toString(), micro.directory().toString())
              .redirectErrorStream(true)
              .start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertEquals(0, p.waitFor(), out);
      try (Stream<Path> old = Files.list(disks)) {
        for (Path o :
            old.filter(
                    f -> !f.equals(disk) && f.getFileName().toString().startsWith("debian-agent-"))
                .toList()) {
          Files.deleteIfExists(o);
        }
      }
    }
    return disk;
  }

  @Test
  void aDebianDiskWithTheAgentsServiceBootsAndServesTheAgent() throws Exception {
    MicroImage micro = TestVms.image();
    Path base = debianDisk(micro);
    String name = TestVms.name("debian");
    Path overlay = AgentVmPaths.runDir(name).resolve("vda.qcow2");
    DiskImages.createOverlay(base, overlay, 0);
    VMTemplate t =
        VMTemplate.builder(name)
            // the micro image's kernel and initramfs load the drivers and hand over to systemd
            .boot(
                new BootSource(
                    micro.kernel(),
                    micro.initramfs(),
                    MicroImage.DEFAULT_CMDLINE + " agentvm.root=vda"))
            .resources(new ResourceProfile(1, 512))
            .disk(DiskAttachment.qcow2(overlay, "vda", ""))
            .build();
    try (VM vm = conn.define(t)) {
      long t0 = System.nanoTime();
      vm.start();
      AgentClient a = vm.awaitAgent(Duration.ofMinutes(3));
      System.out.printf(
          "Debian disk: start to agent HELLO %d ms%n", (System.nanoTime() - t0) / 1_000_000);
      String out =
          a.exec(
                  ExecRequest.script(
                          "grep PRETTY_NAME /etc/os-release; cat /proc/1/comm;"
                              + " systemctl is-active agentvm-agent; hostname; findmnt -n -o SOURCE /",
                          "sh")
                      .withTimeout(Duration.ofSeconds(60)))
              .stdoutText();
      assertTrue(out.contains("Debian GNU/Linux 12"), out);
      assertTrue(out.contains("systemd"), "PID 1 is systemd: " + out);
      assertTrue(out.contains("active"), "the agent runs as its service: " + out);
      assertTrue(out.contains("/dev/vda"), "the root is the disk: " + out);
      ShutdownResult r = vm.shutdown(Duration.ofSeconds(60));
      assertEquals(ShutdownResult.GRACEFUL, r, "systemd powered off when asked");
    }
    TestVms.assertNothingLeft(conn, t);
  }
}
