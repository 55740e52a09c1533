package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.HeartbeatMonitor;
import dev.agentvm.core.agent.HeartbeatMonitor.Health;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** A frozen guest is declared dead by the heartbeat within its deadline. */
class HeartbeatIT extends RealLibvirtTest {
  @Test
  void suspendedGuestIsDeclaredDeadWithinTheDeadline() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("heart")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      List<String> changes = new CopyOnWriteArrayList<>();
      HeartbeatMonitor.Settings s =
          new HeartbeatMonitor.Settings(
              Duration.ofMillis(500), Duration.ofSeconds(2), Duration.ofSeconds(4));
      vm.startHeartbeat(s, (from, to, silence) -> changes.add(from + "->" + to));
      Thread.sleep(2000);
      assertEquals(Health.HEALTHY, vm.health(), "a running guest answers: " + changes);

      vm.pause(); // the guest is frozen: QEMU keeps the socket open, nobody answers
      long t0 = System.nanoTime();
      while (vm.health() != Health.DEAD && System.nanoTime() - t0 < 15_000_000_000L) {
        Thread.sleep(50);
      }
      long ms = (System.nanoTime() - t0) / 1_000_000;
      assertEquals(Health.DEAD, vm.health(), changes.toString());
      // silence counts from the last answer (up to one interval before the pause), and the check
      // runs once an interval; 2.5 s more for a contended host
      assertTrue(
          ms <= s.deadAfter().toMillis() + s.interval().toMillis() + 2500,
          "declared dead after " + ms + " ms");
      assertEquals("WARN->DEAD", changes.get(changes.size() - 1), changes.toString());
      System.out.printf(
          "frozen guest declared dead %d ms after pause (deadAfter %d ms)%n",
          ms, s.deadAfter().toMillis());
    }
    TestVms.assertNothingLeft(conn, t);
  }
}
