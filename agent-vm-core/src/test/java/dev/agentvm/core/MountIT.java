package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.AgentErrorException;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.protocol.MountSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Element;

/** MOUNT of a virtio-9p share on demand, in a real VM. */
class MountIT extends RealLibvirtTest {
  @Test
  void mountsAShareOnDemandReadsHostFilesAndWritesBack() throws Exception {
    String name = TestVms.name("mount");
    Path share = AgentVmPaths.runDir(name).resolve("share");
    VMTemplate t =
        VMTemplate.builder(name)
            .boot(TestVms.boot())
            .customizer(
                d -> {
                  Element fs = d.createElement("filesystem");
                  fs.setAttribute("type", "mount");
                  fs.setAttribute("accessmode", "mapped");
                  Element src = d.createElement("source");
                  src.setAttribute("dir", share.toString());
                  Element target = d.createElement("target");
                  target.setAttribute("dir", "workspace");
                  fs.appendChild(src);
                  fs.appendChild(target);
                  d.getElementsByTagName("devices").item(0).appendChild(fs);
                })
            .build();
    try (VM vm = conn.define(t)) {
      Files.createDirectories(share);
      // QEMU runs as libvirt-qemu: it must be able to write here (FilesystemShare will own this)
      Files.setPosixFilePermissions(
          share, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
      Files.writeString(share.resolve("from-host.txt"), "hello guest\n");
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
      AgentErrorException noTag =
          assertThrows(
              AgentErrorException.class,
              () ->
                  agent.mount(
                      new MountSpec("no-such-tag", "/mnt/x", false), Duration.ofSeconds(30)));
      assertTrue(noTag.getMessage().contains("no-such-tag"), noTag.getMessage());

      agent.mount(new MountSpec("workspace", "/mnt/ws", false), Duration.ofSeconds(30));
      var r =
          agent.exec(
              ExecRequest.script(
                      "cat /mnt/ws/from-host.txt; echo written > /mnt/ws/from-guest.txt", "sh")
                  .withTimeout(Duration.ofSeconds(30)));
      assertEquals("hello guest\n", r.stdoutText(), r.stderrText());
      Path written = share.resolve("from-guest.txt");
      assertEquals("written\n", Files.readString(written));
      // what host-facts says: the guest's files arrive owned by QEMU's user, mode 0600
      assertEquals(
          "rw-------",
          java.nio.file.attribute.PosixFilePermissions.toString(
              Files.getPosixFilePermissions(written)));
    }
    TestVms.assertNothingLeft(conn, t);
  }
}
