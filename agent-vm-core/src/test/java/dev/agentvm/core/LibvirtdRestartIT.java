package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * libvirtd restarts while a VM runs and its agent works: the connection recovers, the VM is still
 * known and controllable, and closing it removes everything.
 */
class LibvirtdRestartIT extends RealLibvirtTest {
  private static void restartLibvirtd() throws Exception {
    String script =
        Files.isDirectory(Path.of("/run/systemd/system"))
            ? "systemctl restart libvirtd"
            // as scripts/setup-host.sh starts it where systemd does not run
            : "pkill -x libvirtd; for i in $(seq 1 100); do pgrep -x libvirtd >/dev/null || break;"
                + " sleep 0.1; done; libvirtd -d";
    Process p = new ProcessBuilder("sh", "-c", script).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), "restarting libvirtd: " + out);
  }

  @Test
  void aVmOutlivesALibvirtdRestartAndIsStillUnderControl() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("restart")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
      restartLibvirtd();
      // the guest and its agent never noticed: QEMU does not depend on libvirtd
      assertEquals(
          "still here\n",
          agent
              .exec(ExecRequest.script("echo still here", "sh").withTimeout(Duration.ofSeconds(30)))
              .stdoutText());
      long t0 = System.nanoTime();
      assertEquals(VMState.RUNNING, vm.state(), "known and running after the restart");
      System.out.printf(
          "state read %d ms after libvirtd restarted%n", (System.nanoTime() - t0) / 1_000_000);
      assertTrue(conn.isConnected());
      assertTrue(conn.domainNames().contains(t.name()), "not lost track of");
      vm.pause();
      assertEquals(VMState.PAUSED, vm.state());
      vm.resume();
      assertEquals(VMState.RUNNING, vm.state());
    }
    TestVms.assertNothingLeft(conn, t);
    assertFalse(conn.domainNames().contains(t.name()));
    assertEquals(
        List.of(), conn.domainNames().stream().filter(n -> n.startsWith(TestVms.PREFIX)).toList());
  }
}
