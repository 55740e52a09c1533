package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.DomainChannelTransport;
import dev.agentvm.core.agent.UnixSocketTransport;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.Protocol;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The libvirt calls we bind ourselves (libvirt-java lacks them), on real VMs. */
class NativeLibvirtCallsIT extends RealLibvirtTest {
  @Test
  void agentAnswersThroughLibvirtsOpenChannel() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("chan")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      DomainHandle d = conn.backend().lookup(t.name()).orElseThrow();
      try (AgentClient agent =
          AgentClient.connect(
              new DomainChannelTransport(d, Protocol.VIRTIO_SERIAL_PORT_NAME),
              Duration.ofSeconds(90))) {
        assertEquals(Protocol.VERSION, agent.hello().version());
        assertTrue(agent.ping(Duration.ofSeconds(5)).toMillis() < 5000);
      }
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void consoleStreamsLiveThroughLibvirtWhileTheLogFileKeepsIt() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("cons")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      DomainHandle d = conn.backend().lookup(t.name()).orElseThrow();
      StringBuilder seen = new StringBuilder();
      try (var console = d.openConsole()) {
        byte[] buf = new byte[4096];
        long end = System.nanoTime() + Duration.ofSeconds(90).toNanos();
        while (!seen.toString().contains("agentvm-init: start") && System.nanoTime() < end) {
          int n = console.input().read(buf, 0, buf.length);
          if (n < 0) {
            break;
          }
          seen.append(new String(buf, 0, n, java.nio.charset.StandardCharsets.UTF_8));
        }
      }
      assertTrue(seen.toString().contains("agentvm-init: start"), "console stream: " + seen);
      // the log is written by virtlogd, after the stream has the bytes: give it a moment
      long logEnd = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      while (!Files.readString(vm.consoleLog()).contains("agentvm-init: start")
          && System.nanoTime() < logEnd) {
        Thread.sleep(100);
      }
      assertTrue(
          Files.readString(vm.consoleLog()).contains("agentvm-init: start"),
          "console log: " + Files.readString(vm.consoleLog()));
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void memorySaveThenRestoreUnderAnotherIdentityResumesTheSameGuest() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("save")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      HelloResponse before;
      try (AgentClient agent =
          AgentClient.connect(new UnixSocketTransport(t.agentSocket()), Duration.ofSeconds(90))) {
        before = agent.hello();
      }
      DomainHandle d = conn.backend().lookup(t.name()).orElseThrow();
      Path image = t.runDir().resolve("memory.save");
      long t0 = System.nanoTime();
      d.saveMemory(image);
      long saveMs = (System.nanoTime() - t0) / 1_000_000;
      assertEquals(VMState.STOPPED, vm.state());
      assertTrue(Files.size(image) > 1_000_000, "save image is " + Files.size(image) + " bytes");

      // under another identity (the clones' way): name, UUID, genid, paths; the same hardware
      VMTemplate clone = t.copyAs(TestVms.name("restored")).build();
      Files.createDirectories(clone.runDir());
      t0 = System.nanoTime();
      DomainHandle restored = conn.backend().restore(image, clone);
      try (VM cloneVm = conn.attach(clone.name())) {
        HelloResponse after;
        try (AgentClient agent =
            AgentClient.connect(
                new UnixSocketTransport(clone.agentSocket()), Duration.ofSeconds(60))) {
          after = agent.hello();
        }
        long restoreMs = (System.nanoTime() - t0) / 1_000_000;
        System.out.printf(
            "save %d ms (%d MB), restore to agent HELLO %d ms%n",
            saveMs, Files.size(image) / 1_000_000, restoreMs);
        assertEquals(VMState.RUNNING, cloneVm.state());
        assertEquals(clone.uuid().toString(), restored.uuid());
        // libvirt itself gives a restored domain a fresh generation id (not even the one the
        // retargeted definition names): what matters is that the guest can tell it is a copy
        java.util.UUID genid = restored.description().templateIfAny().orElseThrow().genid();
        System.out.printf("genid saved %s, asked %s, got %s%n", t.genid(), clone.genid(), genid);
        assertNotEquals(t.genid(), genid, "a restored copy runs under a new generation id");
        // the same agent process, resumed: not a fresh boot
        assertEquals(before.agentStartUptimeMillis(), after.agentStartUptimeMillis());
        assertTrue(after.uptimeMillis() > before.uptimeMillis());
      }
      TestVms.assertNothingLeft(conn, clone);
    }
    TestVms.assertNothingLeft(conn, t);
  }
}
