package dev.agentvm.network;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;
import static org.quicktheories.generators.SourceDSL.strings;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;

/** Generated network and filter XML reads back to the same spec; address arithmetic. */
class NetworkXmlTest {
  private static final Gen<String> NAMES =
      strings()
          .basicLatinAlphabet()
          .ofLengthBetween(1, 20)
          .map(s -> "agentvm-" + s.replaceAll("[^A-Za-z0-9_.-]", "x"));

  private static final Gen<Cidr> SUBNETS =
      integers()
          .between(8, 28)
          .zip(
              integers().all(),
              (prefix, bits) ->
                  new Cidr(new Ipv4(bits & Ipv4.mask(prefix).bits()).toString(), prefix));

  @Test
  void networkXmlRoundTrips() {
    qt().forAll(NAMES, SUBNETS, integers().between(0, 2))
        .checkAssert(
            (name, subnet, kind) -> {
              NetworkSpec s =
                  switch (kind) {
                    case 0 -> new NetworkSpec(name, NetworkMode.ISOLATED, subnet);
                    case 1 -> new NetworkSpec(name, NetworkMode.NAT_FILTERED, subnet);
                    default -> NetworkSpec.isolatedLayer2(name);
                  };
              String xml = NetworkXml.network(s);
              assertEquals(s, NetworkXml.parseNetwork(xml));
              assertEquals(s.uuid().toString(), NetworkXml.uuidOf(xml));
              assertTrue(s.bridge().length() <= 15, s.bridge());
              if (s.subnet() != null) {
                assertTrue(s.subnet().contains(s.hostAddress()));
                assertTrue(s.subnet().contains(s.dhcpStart()));
                assertTrue(s.subnet().contains(s.dhcpEnd()));
              }
            });
  }

  @Test
  void filterXmlRoundTrips() {
    Gen<AllowRule> rules =
        integers()
            .between(1, 65535)
            .zip(
                integers().between(0, 100),
                SUBNETS,
                (port, span, net) ->
                    new AllowRule(
                        span % 2 == 0 ? "tcp" : "udp",
                        span % 3 == 0 ? null : net,
                        port,
                        Math.min(65535, port + span)));
    qt().forAll(NAMES, lists().of(rules).ofSizeBetween(0, 12))
        .checkAssert(
            (name, allowed) -> {
              FilterSpec f = new FilterSpec(name, allowed, allowed.size() % 2 == 0);
              assertEquals(f, NetworkXml.parseFilter(NetworkXml.filter(f)));
            });
  }

  /** The rules of a filter as "action direction priority protocol attr=value ...", in order. */
  private static List<String> rules(String xml) throws Exception {
    var doc =
        dev.agentvm.internal.SecureXml.parserFactory()
            .newDocumentBuilder()
            .parse(new org.xml.sax.InputSource(new java.io.StringReader(xml)));
    var nodes = doc.getElementsByTagName("rule");
    List<String> out = new java.util.ArrayList<>();
    for (int i = 0; i < nodes.getLength(); i++) {
      var r = (org.w3c.dom.Element) nodes.item(i);
      var p = (org.w3c.dom.Element) r.getElementsByTagName("*").item(0);
      StringBuilder b =
          new StringBuilder(
              r.getAttribute("action")
                  + " "
                  + r.getAttribute("direction")
                  + " "
                  + r.getAttribute("priority")
                  + " "
                  + p.getTagName());
      for (String a :
          List.of(
              "srcipaddr", "srcipmask", "dstipaddr", "dstipmask", "dstportstart", "dstportend")) {
        if (p.hasAttribute(a)) {
          b.append(' ').append(a).append('=').append(p.getAttribute(a));
        }
      }
      out.add(b.toString());
    }
    return out;
  }

  private static int priority(String rule) {
    return Integer.parseInt(rule.split(" ", -1)[2]);
  }

  @Test
  void defaultDestinationsArePublicInternetOnly() throws Exception {
    String xml = NetworkXml.filter(FilterSpec.withDefaults("agentvm-web"));
    List<String> rules = rules(xml);
    assertTrue(xml.contains("<filterref filter=\"clean-traffic\"/>"), xml);
    for (String range :
        List.of(
            "127.0.0.0/8",
            "169.254.0.0/16",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "0.0.0.0/8",
            "224.0.0.0/4",
            "240.0.0.0/4")) {
      Cidr c = Cidr.parse(range);
      String deny = "drop out 260 all dstipaddr=" + c.address() + " dstipmask=" + c.prefix();
      assertTrue(rules.contains(deny), deny + " in " + rules);
    }
    assertTrue(rules.contains("drop out 240 all dstipaddr=$AGENTVM_HOST"), rules.toString());
    assertTrue(
        rules.contains("drop out 260 all dstipaddr=$AGENTVM_NET dstipmask=$AGENTVM_NETMASK"),
        "other VMs on the network: " + rules);
    assertFalse(rules.stream().anyMatch(r -> r.startsWith("accept in 250")), "no peers: " + rules);
    // every default (any-destination) rule comes after every denial
    int lastDeny =
        rules.stream()
            .filter(r -> r.startsWith("drop out"))
            .mapToInt(NetworkXmlTest::priority)
            .max()
            .orElseThrow();
    for (String r : rules) {
      if (r.startsWith("accept out") && !r.contains("dstipaddr")) {
        assertTrue(
            priority(r) > lastDeny || r.contains("dstportstart=67"), "after the denials: " + r);
      }
    }
    // DHCP (to the broadcast address) and DNS to the host come before them
    assertTrue(rules.contains("accept out 200 udp dstportstart=67"), rules.toString());
    for (String p : List.of("udp", "tcp")) {
      assertTrue(
          rules.contains("accept out 210 " + p + " dstipaddr=$AGENTVM_HOST dstportstart=53"),
          rules.toString());
    }
    assertTrue(
        rules.contains("accept out 300 tcp dstportstart=443 dstportend=443"), rules.toString());
  }

  @Test
  void aRuleThatNamesAPrivateNetworkIsAcceptedBeforeTheDenials() throws Exception {
    FilterSpec f =
        FilterSpec.withDefaults(
            "agentvm-db",
            AllowRule.tcp("10.1.2.0/24", 5432),
            AllowRule.udp("169.254.169.254/32", 80));
    assertEquals(
        List.of(AllowRule.tcp("10.1.2.0/24", 5432), AllowRule.udp("169.254.169.254/32", 80)),
        f.allowed().subList(0, 2),
        "named destinations first");
    List<String> rules = rules(NetworkXml.filter(f));
    String named =
        "accept out 230 tcp dstipaddr=10.1.2.0 dstipmask=24 dstportstart=5432 dstportend=5432";
    assertTrue(rules.contains(named), rules.toString());
    assertTrue(
        rules.contains(
            "accept out 230 udp dstipaddr=169.254.169.254 dstipmask=32 dstportstart=80 dstportend=80"),
        rules.toString());
    assertTrue(priority(named) < 240 && priority(named) < 260);
    assertEquals(f, NetworkXml.parseFilter(NetworkXml.filter(f)));
    // 0.0.0.0/0 names nothing: it stays behind the denials
    assertEquals(AllowRule.tcp(8080), AllowRule.tcp("0.0.0.0/0", 8080));
  }

  @Test
  void peersAreAllowedOnlyWhenAsked() throws Exception {
    FilterSpec f = FilterSpec.withDefaults("agentvm-peers").withPeers();
    List<String> rules = rules(NetworkXml.filter(f));
    assertTrue(
        rules.contains("accept out 250 all dstipaddr=$AGENTVM_NET dstipmask=$AGENTVM_NETMASK"),
        rules.toString());
    assertTrue(
        rules.contains("accept in 250 all srcipaddr=$AGENTVM_NET srcipmask=$AGENTVM_NETMASK"),
        rules.toString());
    assertTrue(rules.contains("drop out 240 all dstipaddr=$AGENTVM_HOST"), "host still denied");
    assertEquals(f, NetworkXml.parseFilter(NetworkXml.filter(f)));
    assertFalse(
        NetworkXml.parseFilter(NetworkXml.filter(FilterSpec.withDefaults("agentvm-x"))).peers());
  }

  @Test
  void theNicCarriesTheReservedAddressAndTheNetworksParameters() {
    NetworkSpec net = NetworkSpec.natFiltered("agentvm-n", "10.213.5.0/24");
    FilterSpec f = FilterSpec.withDefaults("agentvm-f");
    var nic =
        Networks.attachment(
            net,
            f,
            new IpAllocator.Reservation(net.name(), "02:a6:00:00:00:01", "10.213.5.10", "vm"));
    assertEquals("agentvm-f", nic.filter());
    assertEquals(
        java.util.Map.of(
            "IP", "10.213.5.10",
            "AGENTVM_HOST", "10.213.5.1",
            "AGENTVM_NET", "10.213.5.0",
            "AGENTVM_NETMASK", "24",
            "AGENTVM_DHCP", "10.213.5.1",
            "AGENTVM_DHCPMASK", "32"),
        nic.filterParameters());
    // no address given: learnt from DHCP only (libvirt's default lets IPv4 through meanwhile)
    assertEquals(
        java.util.Map.of(
            "AGENTVM_HOST", "0.0.0.0",
            "AGENTVM_NET", "0.0.0.0",
            "AGENTVM_NETMASK", "32",
            "AGENTVM_DHCP", "0.0.0.0",
            "AGENTVM_DHCPMASK", "0",
            "CTRL_IP_LEARNING", "dhcp"),
        Networks.attachment(NetworkSpec.isolatedLayer2("agentvm-l2"), f, "02:a6:00:00:00:02", null)
            .filterParameters());
    assertEquals(
        java.util.Map.of(
            "AGENTVM_HOST", "10.213.5.1",
            "AGENTVM_NET", "10.213.5.0",
            "AGENTVM_NETMASK", "24",
            "AGENTVM_DHCP", "10.213.5.1",
            "AGENTVM_DHCPMASK", "32",
            "CTRL_IP_LEARNING", "dhcp",
            "DHCPSERVER", "10.213.5.1"),
        Networks.attachment(net, f, "02:a6:00:00:00:04", null).filterParameters());
    assertEquals(
        java.util.Map.of(),
        Networks.attachment(net, null, "02:a6:00:00:00:03", null).filterParameters());
    assertThrows(
        IllegalArgumentException.class,
        () ->
            Networks.attachment(
                net,
                f,
                new IpAllocator.Reservation(
                    "agentvm-other", "02:a6:00:00:00:01", "10.0.0.1", "vm")));
  }

  @Test
  void xmlEscapesAndForeignNetworksAreNotOurs() {
    assertNull(
        NetworkXml.parseNetwork("<network><name>x</name><bridge name='virbr0'/></network>"),
        "no marker, not ours");
    String host = NetworkXml.dhcpHost("02:a6:00:00:00:01", "10.0.0.10", "a&b<c");
    assertTrue(host.contains("a&amp;b&lt;c"), host);
  }

  @Test
  void addresses() {
    qt().forAll(integers().all())
        .checkAssert(bits -> assertEquals(new Ipv4(bits), Ipv4.parse(new Ipv4(bits).toString())));
    Cidr c = Cidr.parse("10.213.7.0/24");
    assertEquals("255.255.255.0", c.netmask());
    assertEquals("10.213.7.1", c.host(1));
    assertTrue(c.contains("10.213.7.254"));
    assertFalse(c.contains("10.213.8.1"));
    for (String bad :
        List.of("10.0.0.1/24", "10.0.0.0/33", "10.0.0/24", "300.0.0.0/8", "01.0.0.0/8", "x")) {
      assertThrows(IllegalArgumentException.class, () -> Cidr.parse(bad), bad);
    }
    assertThrows(IllegalArgumentException.class, () -> c.host(256));
    assertThrows(IllegalArgumentException.class, () -> new AllowRule("icmp", null, 1, 1));
    assertThrows(IllegalArgumentException.class, () -> new AllowRule("tcp", null, 10, 9));
    assertThrows(
        IllegalArgumentException.class,
        () -> new NetworkSpec("other-net", NetworkMode.ISOLATED, c));
    assertThrows(
        IllegalArgumentException.class,
        () -> new NetworkSpec("agentvm-n", NetworkMode.NAT_FILTERED, null));
    assertThrows(
        IllegalArgumentException.class, () -> new NetworkSpec("agentvm-n", NetworkMode.BRIDGE, c));
  }

  @Test
  void macsAreLocallyAdministeredUnicastAndDistinct() {
    java.util.Set<String> seen = new java.util.HashSet<>();
    for (int i = 0; i < 10_000; i++) {
      String m = MacAddresses.random();
      assertTrue(m.matches("02:a6(:[0-9a-f]{2}){4}"), m);
      assertTrue(MacAddresses.isLocalUnicast(m));
      seen.add(m);
    }
    assertTrue(seen.size() > 9_990, "random enough: " + seen.size());
  }
}
