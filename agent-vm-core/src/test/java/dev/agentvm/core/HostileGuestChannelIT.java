package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentChannelClosedException;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.HeartbeatMonitor;
import dev.agentvm.core.agent.HeartbeatMonitor.Health;
import dev.agentvm.protocol.Protocol;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Attacks on the agent channel, run from inside a real guest (root in the guest, as a hostile agent
 * would be): the host's outcome is asserted, not the guest's.
 */
class HostileGuestChannelIT extends RealLibvirtTest {
  /** Finds the agent's port and stops or replaces the agent a second after the command returned. */
  private static final String FIND_PORT =
      "for p in /sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = "
          + Protocol.VIRTIO_SERIAL_PORT_NAME
          + " ] && dev=/dev/${p##*/}; done; agent=$PPID; ";

  @Test
  void aGuestThatStopsReadingIsDeclaredDeadAndHangsNoCall() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("stall")).boot(TestVms.boot()).build();
    stopsReading(conn, t);
    TestVms.assertNothingLeft(conn, t);
  }

  /** The stop-reading attack on {@code t}'s VM through {@code conn} (also a remote host's). */
  static void stopsReading(LibvirtConnection conn, VMTemplate t) throws Exception {
    Path big = Files.createTempFile("agentvm-stall", ".bin");
    try (VM vm = conn.define(t)) {
      Files.write(big, new byte[32 << 20]);
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
      agent.writeStallLimit(Duration.ofSeconds(2)); // a write blocked this long closes the channel
      HeartbeatMonitor.Settings hb =
          new HeartbeatMonitor.Settings(
              Duration.ofMillis(500), Duration.ofSeconds(2), Duration.ofSeconds(4));
      vm.startHeartbeat(hb, (from, to, silence) -> {});
      // the attack: freeze the agent (SIGSTOP); the guest kernel then stops taking bytes off the
      // port, QEMU stops reading the host's socket, and the host's writes block
      agent.exec(
          ExecRequest.script(FIND_PORT + "(sleep 1; kill -STOP $agent) >/dev/null 2>&1 &", "sh")
              .withTimeout(Duration.ofSeconds(20)));
      Thread.sleep(1500);

      long t0 = System.nanoTime();
      assertThrows(
          IOException.class, () -> agent.putFile(big, "/tmp/big", 0644, Duration.ofSeconds(5)));
      long putMs = (System.nanoTime() - t0) / 1_000_000;
      assertTrue(putMs < 8_000, "putFile kept its deadline: " + putMs + " ms");

      while (vm.health() != Health.DEAD && System.nanoTime() - t0 < 20_000_000_000L) {
        Thread.sleep(50);
      }
      assertEquals(Health.DEAD, vm.health(), "a guest that reads nothing is declared dead");
      long deadMs = (System.nanoTime() - t0) / 1_000_000;

      // large writes the guest never takes off the port: the socket fills, the write blocks for
      // the stall limit, and the channel is closed; calls then fail at once (through a remote
      // host, that daemon takes some megabytes first: measured closed after 35 s instead of 10)
      while (agent.isOpen() && System.nanoTime() - t0 < 120_000_000_000L) {
        try {
          agent.execAsync(
              ExecRequest.command("cat").withStdin(new byte[ExecRequest.MAX_STDIN]),
              dev.agentvm.core.agent.OutputListener.NONE);
        } catch (IOException expected) {
          // a timeout: the stall limit passed, or a write that never started was dropped
        }
      }
      assertFalse(agent.isOpen(), "the stalled channel was closed");
      long t1 = System.nanoTime();
      assertThrows(AgentChannelClosedException.class, () -> agent.ping(Duration.ofSeconds(30)));
      assertTrue(System.nanoTime() - t1 < 1_000_000_000L, "a closed channel fails at once");
      System.out.printf(
          "stalled guest: putFile failed after %d ms, DEAD after %d ms, channel closed after %d"
              + " ms%n",
          putMs, deadMs, (System.nanoTime() - t0) / 1_000_000);
      vm.shutdown(Duration.ZERO); // its agent is frozen: a graceful power-off would only wait
    } finally {
      Files.deleteIfExists(big);
    }
  }

  @Test
  void aGuestFloodingTheChannelWithBadFramesGetsItClosed() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("flood")).boot(TestVms.boot()).build();
    floods(conn, t);
    TestVms.assertNothingLeft(conn, t);
  }

  /** The bad-frame flood on {@code t}'s VM through {@code conn} (also a remote host's). */
  static void floods(LibvirtConnection conn, VMTemplate t) throws Exception {
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
      // the attack: kill the agent, take its port, and write thousands of frame headers with the
      // right magic and version and a wrong CRC (each one costs the host a resync)
      agent.exec(
          ExecRequest.script(
                  FIND_PORT
                      // the dying agent keeps the port a moment (EBUSY): retry until it is ours
                      + "flood() { i=0; while [ $i -lt 3000 ]; do"
                      + " printf 'AVMP\\001\\002\\000\\001XXXXXXXXXXXX'; i=$((i+1)); done; };"
                      + " (sleep 1; kill -KILL $agent; n=0;"
                      + " until (flood > $dev) 2>/dev/null || [ $n -gt 200 ]; do sleep 0.02;"
                      + " n=$((n+1)); done) >/dev/null 2>&1 &",
                  "sh")
              .withTimeout(Duration.ofSeconds(20)));
      long t0 = System.nanoTime();
      IOException e = null;
      while (e == null && System.nanoTime() - t0 < 60_000_000_000L) {
        try {
          agent.ping(Duration.ofSeconds(10)); // answered until the agent is killed
          Thread.sleep(200);
        } catch (IOException failed) {
          e = failed;
        }
      }
      long ms = (System.nanoTime() - t0) / 1_000_000;
      assertTrue(e != null, "the flood ended the channel");
      assertFalse(agent.isOpen(), "the host closed the channel: " + e);
      assertTrue(
          String.valueOf(e.getMessage()).contains("malformed")
              || (e.getCause() != null
                  && String.valueOf(e.getCause().getMessage()).contains("malformed")),
          "closed for the malformed frames: " + e);
      System.out.printf("flooding guest: channel closed %d ms into the flood%n", ms);
      vm.shutdown(Duration.ZERO); // its agent was killed: a graceful power-off would only wait
    }
  }
}
