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
              FilterSpec f = new FilterSpec(name, allowed);
              assertEquals(f, NetworkXml.parseFilter(NetworkXml.filter(f)));
            });
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
