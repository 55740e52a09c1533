package dev.agentvm.network;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** DHCP reservations on a real libvirt network, from two JVMs at once. */
class IpAllocatorIT extends RealLibvirtTest {
  @TempDir Path state;

  @Test
  void twoJvmsOfOneHundredConcurrentAllocationsEachGetNoDuplicate() throws Exception {
    String id = UUID.randomUUID().toString().substring(0, 6);
    // defined, never started: reservations live in the definition, no bridge or dnsmasq is made
    NetworkSpec net = NetworkSpec.isolated("agentvm-test-alloc-" + id, "10.213.90.0/24");
    Networks nets = new Networks(conn);
    nets.ensureDefined(net);
    try {
      Process child =
          dev.agentvm.core.TestVms.startJvm(
              AllocateMany.class, net.name(), "10.213.90.0/24", "100", state.toString());
      IpAllocator ips = new IpAllocator(conn, net, state);
      long t0 = System.nanoTime();
      List<String> mine = AllocateMany.allocate(ips, 100, "parent");
      String childOut = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertTrue(child.waitFor(120, TimeUnit.SECONDS));
      assertEquals(0, child.exitValue(), childOut);
      long ms = (System.nanoTime() - t0) / 1_000_000;
      List<String> theirs = childOut.lines().filter(l -> l.startsWith("10.")).toList();
      assertEquals(100, theirs.size(), childOut);
      Set<String> allIps = new HashSet<>();
      List<String> all = new ArrayList<>(mine);
      all.addAll(theirs);
      for (String line : all) {
        String ip = line.split(" ", -1)[0];
        assertTrue(allIps.add(ip), "duplicate address " + ip);
        assertTrue(net.subnet().contains(ip));
      }
      assertEquals(200, allIps.size());
      assertEquals(200, ips.reservations().size(), "libvirt holds every reservation");
      System.out.printf("200 allocations from two JVMs in %d ms%n", ms);

      String someMac = mine.get(0).split(" ", -1)[1];
      assertThrows(
          NetworkConflictException.class, () -> ips.allocate("agentvm-test-again", someMac));
      for (String line : mine) {
        ips.release(line.split(" ", -1)[1]);
      }
      assertEquals(100, ips.reservations().size());
      // the child is gone and its VMs never existed: its reservations are reclaimed
      assertEquals(100, ips.reclaim());
      assertEquals(0, ips.reservations().size());
      assertEquals(0, ips.reclaim(), "nothing more to reclaim");
    } finally {
      assertTrue(nets.removeIfUnused(net.name()));
    }
  }

  @Test
  void theReaperReclaimsReservationsOfAJvmThatIsGone() throws Exception {
    String id = UUID.randomUUID().toString().substring(0, 6);
    NetworkSpec net = NetworkSpec.isolated("agentvm-test-reap-" + id, "10.213.91.0/24");
    Networks nets = new Networks(conn);
    nets.ensureDefined(net);
    Path bookkeeping = dev.agentvm.internal.AgentVmPaths.stateRoot().resolve("networks");
    try {
      Process child =
          dev.agentvm.core.TestVms.startJvm(
              AllocateMany.class, net.name(), "10.213.91.0/24", "3", bookkeeping.toString());
      String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertTrue(child.waitFor(60, TimeUnit.SECONDS), out);
      IpAllocator ips = new IpAllocator(conn, net);
      assertEquals(3, ips.reservations().size(), out);
      dev.agentvm.core.Reaper.Report r =
          dev.agentvm.core.Reaper.reapOrphans(conn, java.time.Duration.ofSeconds(5));
      assertEquals(3, r.others().get("address reservations"), r.toString());
      assertEquals(0, ips.reservations().size());
    } finally {
      assertTrue(nets.removeIfUnused(net.name()));
      dev.agentvm.core.Reaper.reapOrphans(conn, java.time.Duration.ofSeconds(5));
      assertTrue(
          !java.nio.file.Files.exists(bookkeeping.resolve(net.name() + ".owners.json")),
          "bookkeeping of a removed network is removed by the reaper");
    }
  }
}
