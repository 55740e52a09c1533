package dev.agentvm.network;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.Reaper;
import dev.agentvm.core.RemoteLibvirtHost;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Networks, filters and address reservations on another libvirt host ({@link RemoteLibvirtHost}: a
 * second daemon in its own network namespace, reached over {@code qemu+tcp}): defined there through
 * libvirt's remote protocol, a VM there held to a filter defined there, and reservations kept and
 * reclaimed per host. Packets travel only between a guest on that host and a namespace this test
 * joins to that host's bridge.
 */
class RemoteNetworkIT extends RealLibvirtTest {
  private static RemoteLibvirtHost host;
  private static LibvirtConnection remote;

  @TempDir Path tmp;
  private final String id = UUID.randomUUID().toString().substring(0, 6);
  private final List<BridgePeer> peers = new java.util.ArrayList<>();

  @BeforeAll
  static void startHost() {
    host = RemoteLibvirtHost.start(7);
    remote = LibvirtConnection.open(host.uri());
  }

  @AfterAll
  static void stopHost() {
    RemoteLibvirtHost.stop(host, remote);
  }

  @AfterEach
  void removeTestNetworks() throws Exception {
    for (BridgePeer p : peers) {
      p.close();
    }
    for (LibvirtConnection c : List.of(conn, remote)) {
      Networks nets = new Networks(c);
      List<String> names = new java.util.ArrayList<>(c.backend().networks().networkNames());
      names.addAll(c.backend().networks().filterNames());
      for (String n : names) {
        if (n.startsWith("agentvm-test-")) {
          nets.removeIfUnused(n);
        }
      }
    }
  }

  @Test
  void aVmThereIsHeldToTheFilterDefinedThere() throws Exception {
    Networks nets = new Networks(remote);
    NetworkSpec l2 = NetworkSpec.isolatedLayer2("agentvm-test-rl2-" + id);
    FilterSpec only80 =
        new FilterSpec("agentvm-test-r80-" + id, List.of(AllowRule.tcp("10.213.78.0/24", 80)));
    nets.ensure(l2);
    nets.ensure(only80);
    assertEquals(l2, nets.read(l2.name()).orElseThrow(), "read back from that host");
    assertTrue(new Networks(conn).read(l2.name()).isEmpty(), "not defined on this machine");
    assertTrue(new Networks(conn).readFilter(only80.name()).isEmpty());
    assertFalse(
        sh("ip link show").contains(l2.bridge()),
        "the bridge is in the host's namespace, not here");

    VMTemplate t =
        VMTemplate.builder(TestVms.name("rnet"))
            .boot(TestVms.boot())
            .nic(nets.nic(l2, only80, MacAddresses.random()))
            .build();
    String probed;
    peers.add(BridgePeer.start(l2.bridge(), host.namespace(), "10.213.78", id, tmp));
    try (VM vm = remote.define(t)) {
      vm.start();
      assertEquals(List.of(t.name()), nets.usersOf(l2.name()));
      assertFalse(nets.removeIfUnused(l2.name()), "in use there: kept");
      AgentClient a = vm.awaitAgent(Duration.ofMinutes(2));
      probed =
          a.exec(
                  ExecRequest.script(BridgePeer.probe("10.213.78"), "sh")
                      .withTimeout(Duration.ofSeconds(60)))
              .stdoutText();
      System.out.println("a filtered VM on the other host: " + probed.replace('\n', ' '));
    }
    assertTrue(probed.startsWith("10.213.78."), "an address from the peer's DHCP: " + probed);
    assertTrue(BridgePeer.said(probed, "80:open"), probed);
    assertTrue(
        BridgePeer.said(probed, "8080:blocked"), "the host's filter drops the rest: " + probed);
    assertTrue(nets.removeIfUnused(only80.name()));
    assertTrue(nets.removeIfUnused(l2.name()), "unused now: removed there");
    assertTrue(nets.read(l2.name()).isEmpty());
  }

  @Test
  void reservationsAreKeptPerHostAndReclaimedOnTheirOwnHost() throws Exception {
    // one name, a network on each host: two networks, each with its own reservations
    NetworkSpec net = NetworkSpec.isolated("agentvm-test-rres-" + id, "10.213.92.0/24");
    Path here = IpAllocator.stateDir(conn);
    Path there = IpAllocator.stateDir(remote);
    assertNotEquals(here, there);
    assertEquals(here.resolve(".hosts"), there.getParent(), there.toString());
    new Networks(conn).ensureDefined(net);
    new Networks(remote).ensureDefined(net);
    IpAllocator local = new IpAllocator(conn, net);
    IpAllocator far = new IpAllocator(remote, net);
    try {
      // a process that reserves three addresses on the other host and exits
      Process child =
          TestVms.startJvm(
              AllocateMany.class, net.name(), "10.213.92.0/24", "3", "-", remote.uri());
      String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertTrue(child.waitFor(60, TimeUnit.SECONDS), out);
      assertEquals(0, child.exitValue(), out);
      IpAllocator.Reservation mine = local.allocate(TestVms.name("mine"), MacAddresses.random());
      assertEquals(3, far.reservations().size(), out);
      assertEquals(List.of(mine), local.reservations());
      assertEquals(3, owners(there, net).size(), "the child's bookkeeping is the host's");
      assertEquals(1, owners(here, net).size(), "this machine's holds only its own");

      // this machine's reaper neither takes the other host's reservations nor loses their records
      Reaper.reapOrphans(conn, Duration.ofSeconds(5));
      assertEquals(3, far.reservations().size());
      assertEquals(List.of(mine), local.reservations());

      // the other host's reaper reclaims them there
      Reaper.Report rr = Reaper.reapOrphans(remote, Duration.ofSeconds(5));
      assertEquals(3, rr.others().get("address reservations"), rr.toString());
      assertEquals(0, far.reservations().size());
      assertEquals(List.of(mine), local.reservations(), "this machine's untouched");
      local.release(mine.mac());
    } finally {
      new Networks(remote).removeIfUnused(net.name());
      new Networks(conn).removeIfUnused(net.name());
      Reaper.reapOrphans(remote, Duration.ofSeconds(5));
      Reaper.reapOrphans(conn, Duration.ofSeconds(5));
    }
    assertTrue(new Networks(remote).read(net.name()).isEmpty(), "removed there");
    assertTrue(new Networks(conn).read(net.name()).isEmpty(), "removed here");
    assertFalse(
        Files.exists(there.resolve(net.name() + ".owners.json")), "records of a removed network");
    assertFalse(Files.exists(here.resolve(net.name() + ".owners.json")));
  }

  private static List<String> owners(Path dir, NetworkSpec net) throws Exception {
    List<String> macs = new java.util.ArrayList<>();
    new ObjectMapper()
        .readTree(dir.resolve(net.name() + ".owners.json").toFile())
        .fieldNames()
        .forEachRemaining(macs::add);
    return macs;
  }

  private static String sh(String cmd) throws Exception {
    Process p = new ProcessBuilder("sh", "-c", cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    p.waitFor();
    return out;
  }
}
