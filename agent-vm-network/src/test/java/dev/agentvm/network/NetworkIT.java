package dev.agentvm.network;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Networks, filters and VMs on real libvirt. Packets only ever travel between a guest and a network
 * namespace this test makes (veth into a layer-2 libvirt bridge that has no host address); nothing
 * is sent to the host's own addresses or beyond the machine.
 */
class NetworkIT extends RealLibvirtTest {
  @TempDir Path tmp;
  private final String id = UUID.randomUUID().toString().substring(0, 6);
  private final List<BridgePeer> peers = new ArrayList<>();

  @AfterEach
  void cleanUp() throws Exception {
    for (BridgePeer p : peers) {
      p.close();
    }
    Networks nets = new Networks(conn);
    for (String n : List.copyOf(conn.backend().networks().networkNames())) {
      if (n.startsWith("agentvm-test-")) {
        nets.removeIfUnused(n);
      }
    }
    for (String f : List.copyOf(conn.backend().networks().filterNames())) {
      if (f.startsWith("agentvm-test-")) {
        nets.removeIfUnused(f);
      }
    }
  }

  private static ExecResult guest(AgentClient a, String script) throws Exception {
    return a.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofSeconds(60)));
  }

  @Test
  void definitionsAreAcceptedByLibvirtAndReadBackEqual() {
    Networks nets = new Networks(conn);
    NetworkSpec isolated = NetworkSpec.isolated("agentvm-test-iso-" + id, "10.213.71.0/24");
    NetworkSpec nat = NetworkSpec.natFiltered("agentvm-test-nat-" + id, "10.213.72.0/24");
    NetworkSpec l2 = NetworkSpec.isolatedLayer2("agentvm-test-l2-" + id);
    FilterSpec filter =
        FilterSpec.withDefaults(
            "agentvm-test-allow-" + id,
            AllowRule.tcp(8080),
            AllowRule.tcp("192.0.2.0/24", 5432),
            new AllowRule("udp", null, 6000, 6010));
    for (NetworkSpec n : List.of(isolated, nat, l2)) {
      nets.ensureDefined(n);
      assertEquals(n, nets.read(n.name()).orElseThrow(), "read back equal: " + n.name());
      nets.ensureDefined(n); // idempotent
    }
    nets.ensure(filter);
    assertEquals(filter, nets.readFilter(filter.name()).orElseThrow());
    // what libvirt holds denies the non-public ranges before the any-destination rules
    String held = conn.backend().networks().filterXml(filter.name()).orElseThrow();
    for (String deny :
        List.of(
            "dstipaddr='169.254.0.0' dstipmask='16'",
            "dstipaddr='10.0.0.0' dstipmask='8'",
            "dstipaddr='$AGENTVM_HOST'",
            "dstipaddr='$AGENTVM_NET' dstipmask='$AGENTVM_NETMASK'")) {
      assertTrue(held.contains(deny), deny + " in " + held);
    }
    assertTrue(held.contains("<filterref filter='clean-traffic'/>"), held);
    nets.ensure(filter);
    FilterSpec peers = filter.withPeers();
    nets.ensure(peers);
    assertEquals(peers, nets.readFilter(filter.name()).orElseThrow(), "peers read back");
    FilterSpec changed = FilterSpec.withDefaults(filter.name(), AllowRule.tcp(9000));
    nets.ensure(changed);
    assertEquals(changed, nets.readFilter(filter.name()).orElseThrow(), "ours: updated in place");

    NetworkSpec other = NetworkSpec.isolated(isolated.name(), "10.213.73.0/24");
    assertThrows(NetworkConflictException.class, () -> nets.ensureDefined(other));
    assertEquals(isolated, nets.read(isolated.name()).orElseThrow(), "not clobbered");

    for (String n : List.of(isolated.name(), nat.name(), l2.name(), filter.name())) {
      assertTrue(nets.removeIfUnused(n), n);
      assertFalse(nets.removeIfUnused(n), "gone: " + n);
    }
  }

  @Test
  void aForeignNetworkOrFilterIsNeverTouched() {
    String name = "agentvm-test-foreign-" + id;
    conn.backend()
        .networks()
        .defineNetwork(
            "<network><name>" + name + "</name><bridge name='agvf" + id + "'/></network>");
    conn.backend()
        .networks()
        .defineFilter(
            "<filter name='"
                + name
                + "' chain='root'><rule action='accept' direction='out'><all/></rule></filter>");
    try {
      Networks nets = new Networks(conn);
      NetworkConflictException e =
          assertThrows(
              NetworkConflictException.class,
              () -> nets.ensureDefined(NetworkSpec.isolatedLayer2(name)));
      assertTrue(e.getMessage().contains("not made by agent-vm"), e.getMessage());
      assertThrows(
          NetworkConflictException.class, () -> nets.ensure(new FilterSpec(name, List.of())));
      assertFalse(nets.removeIfUnused(name));
      assertTrue(conn.backend().networks().networkXml(name).isPresent());
      assertTrue(conn.backend().networks().filterXml(name).isPresent());
    } finally {
      conn.backend().networks().undefineNetwork(name);
      conn.backend().networks().undefineFilter(name);
    }
  }

  @Test
  void aVmInModeNoneHasNoNetworkInterface() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("nonet")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient a = vm.awaitAgent(Duration.ofSeconds(90));
      assertEquals("lo", guest(a, "ls /sys/class/net").stdoutText().trim());
    }
  }

  @Test
  void theFilterLetsAllowedConnectionsThroughAndDropsTheRest() throws Exception {
    Networks nets = new Networks(conn);
    NetworkSpec l2 = NetworkSpec.isolatedLayer2("agentvm-test-l2-" + id);
    // the peer is on a private network: only a rule that names it reaches it
    FilterSpec only80 =
        new FilterSpec("agentvm-test-only80-" + id, List.of(AllowRule.tcp("10.213.77.0/24", 80)));
    FilterSpec defaults = FilterSpec.withDefaults("agentvm-test-defaults-" + id);
    nets.ensure(l2);
    nets.ensure(only80);
    nets.ensure(defaults);

    // the peer: a namespace on the bridge with a DHCP server and two web servers
    BridgePeer peer = BridgePeer.start(l2.bridge(), null, "10.213.77", id, tmp);
    peers.add(peer);
    String probe = BridgePeer.probe("10.213.77");
    VMTemplate filtered =
        VMTemplate.builder(TestVms.name("filtered"))
            .boot(TestVms.boot())
            .nic(nets.nic(l2, only80, MacAddresses.random()))
            .build();
    VMTemplate publicOnly =
        VMTemplate.builder(TestVms.name("defaults"))
            .boot(TestVms.boot())
            .nic(nets.nic(l2, defaults, MacAddresses.random()))
            .build();
    // after the probe, the guest takes another address on the network and tries again
    String spoof =
        "ip addr flush dev eth0; ip addr add 10.213.77.199/24 dev eth0;"
            + " if printf 'GET /ok.txt HTTP/1.0\\r\\n\\r\\n'"
            + " | nc -w 4 10.213.77.1 80 2>/dev/null | grep -q reached;"
            + " then echo spoofed:open; else echo spoofed:blocked; fi";
    VMTemplate open =
        VMTemplate.builder(TestVms.name("open"))
            .boot(TestVms.boot())
            .nic(nets.nic(l2, null, MacAddresses.random()))
            .build();
    try (VM f = conn.define(filtered);
        VM o = conn.define(open);
        VM p = conn.define(publicOnly)) {
      f.start();
      o.start();
      p.start();
      assertFalse(nets.removeIfUnused(l2.name()), "in use: kept");
      assertEquals(
          List.of(filtered.name(), open.name(), publicOnly.name()).stream().sorted().toList(),
          nets.usersOf(l2.name()).stream().sorted().toList());
      AgentClient fa = f.awaitAgent(Duration.ofSeconds(90));
      AgentClient oa = o.awaitAgent(Duration.ofSeconds(90));
      AgentClient pa = p.awaitAgent(Duration.ofSeconds(90));
      // the three guests probe at once: each blocked port waits out nc's timeout
      java.util.concurrent.ExecutorService probes =
          java.util.concurrent.Executors.newFixedThreadPool(3);
      String fo;
      String oo;
      String po;
      try {
        java.util.concurrent.Future<String> ff = probes.submit(() -> guest(fa, probe).stdoutText());
        java.util.concurrent.Future<String> of = probes.submit(() -> guest(oa, probe).stdoutText());
        java.util.concurrent.Future<String> pf = probes.submit(() -> guest(pa, probe).stdoutText());
        fo = ff.get();
        oo = of.get();
        po = pf.get();
      } finally {
        probes.shutdownNow();
      }
      String so = guest(fa, spoof).stdoutText();
      System.out.println(
          "filtered VM: "
              + fo.replace('\n', ' ')
              + "| open VM: "
              + oo.replace('\n', ' ')
              + "| defaults VM: "
              + po.replace('\n', ' ')
              + "| spoofing: "
              + so.trim());
      assertTrue(
          fo.startsWith("10.213.77."),
          "the guest got its address from the namespace's DHCP server: "
              + fo
              + Files.readString(f.consoleLog()));
      assertTrue(BridgePeer.said(fo, "80:open"), fo);
      assertTrue(
          BridgePeer.said(fo, "8080:blocked"), "the filter drops what it does not allow: " + fo);
      assertTrue(
          BridgePeer.said(oo, "80:open") && BridgePeer.said(oo, "8080:open"),
          "without the filter both work: " + oo);
      assertNotEquals(fo.lines().findFirst(), oo.lines().findFirst(), "two addresses");
      assertTrue(
          BridgePeer.said(po, "80:blocked") && BridgePeer.said(po, "8080:blocked"),
          "the default allow-list (port 80 to any destination) does not reach a private address: "
              + po);
      assertTrue(
          so.contains("spoofed:blocked"),
          "clean-traffic drops packets from an address the guest was not given: " + so);
    }
    assertTrue(nets.removeIfUnused(only80.name()));
    assertTrue(nets.removeIfUnused(defaults.name()));
    assertTrue(nets.removeIfUnused(l2.name()), "unused now: removed");
  }
}
