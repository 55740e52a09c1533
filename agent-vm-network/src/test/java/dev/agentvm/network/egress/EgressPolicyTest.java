package dev.agentvm.network.egress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.strings;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Policy decisions against a resolver the test controls: names, ports, addresses, rebinding. */
class EgressPolicyTest {
  private static InetAddress ip(String literal) {
    return AddressBlock.literal(literal).orElseThrow();
  }

  /** A resolver that knows only these names. */
  private static EgressResolver dns(Map<String, List<String>> names) {
    return name -> {
      List<String> a = names.get(name);
      if (a == null) {
        throw new UnknownHostException(name);
      }
      return a.stream().map(EgressPolicyTest::ip).toList();
    };
  }

  private static final EgressResolver DNS =
      dns(
          Map.ofEntries(
              Map.entry("pypi.org", List.of("151.101.0.223")),
              Map.entry("files.pythonhosted.org", List.of("151.101.1.63", "2a04:4e42::319")),
              Map.entry("evil.example.com", List.of("127.0.0.1")),
              Map.entry("metadata.example.com", List.of("169.254.169.254")),
              Map.entry("mixed.example.com", List.of("10.1.2.3", "203.0.113.9")),
              Map.entry("mapped.example.com", List.of("::ffff:192.168.1.1")),
              Map.entry("ula.example.com", List.of("fd12::1")),
              Map.entry("cgnat.example.com", List.of("100.64.0.7")),
              Map.entry("self.example.com", List.of("198.51.100.77")),
              Map.entry("nat64.example.com", List.of("64:ff9b:1::a9fe:a9fe")),
              Map.entry("compat.example.com", List.of("::a9fe:a9fe")),
              Map.entry("teredo.example.com", List.of("2001::1")),
              Map.entry("sitelocal.example.com", List.of("fec0::1"))));

  private static EgressPolicy.Builder policy() {
    return EgressPolicy.builder()
        .allowDomain("pypi.org")
        .allowDomain("*.pythonhosted.org")
        .allowDomain("*.example.com")
        .ownAddresses(Set.of(ip("198.51.100.77")));
  }

  @Test
  void allowedNamesConnectToTheAddressesThatWereChecked() {
    EgressDecision d = policy().build().decide("PyPI.org.", 443, DNS);
    assertTrue(d.allowed(), d.toString());
    assertEquals("pypi.org", d.host());
    assertEquals(List.of(ip("151.101.0.223")), d.addresses());
    assertEquals("domain pypi.org", d.rule());
    EgressDecision w = policy().build().decide("files.pythonhosted.org", 443, DNS);
    assertTrue(w.allowed());
    assertEquals(2, w.addresses().size(), "IPv4 and IPv6");
    assertEquals("domain *.pythonhosted.org", w.rule());
  }

  @Test
  void namesPortsAndDomainsOutsideThePolicyAreDenied() {
    EgressPolicy p = policy().build();
    assertEquals("domain", p.decide("pythonhosted.org", 443, DNS).rule(), "*. is not the apex");
    assertEquals("domain", p.decide("github.com", 443, DNS).rule());
    assertEquals("domain", p.decide("pypi.org.attacker.net", 443, DNS).rule());
    assertEquals("port", p.decide("pypi.org", 22, DNS).rule());
    assertTrue(p.decide("pypi.org", 22, DNS).reason().contains("[80, 443]"));
    assertEquals("port", p.decide("pypi.org", 0, DNS).rule());
    assertEquals("resolve", p.decide("nowhere.example.com", 443, DNS).rule());
    for (String odd : List.of("", "a..b", "-a.com", "a_b.com", "x y.com", "a.com\n", "127.1")) {
      assertEquals("name", p.decide(odd, 443, DNS).rule(), odd);
    }
  }

  /** DNS rebinding: an allowed name that resolves to the host's neighbourhood gets nowhere. */
  @Test
  void allowedNamesThatResolveToSpecialAddressesAreRefused() {
    EgressPolicy p = policy().build();
    for (String n :
        List.of(
            "evil.example.com",
            "metadata.example.com",
            "mapped.example.com",
            "ula.example.com",
            "cgnat.example.com",
            "self.example.com",
            "nat64.example.com",
            "compat.example.com",
            "teredo.example.com",
            "sitelocal.example.com")) {
      EgressDecision d = p.decide(n, 443, DNS);
      assertFalse(d.allowed(), n + ": " + d);
      assertEquals("address", d.rule(), n);
    }
    assertTrue(p.decide("metadata.example.com", 443, DNS).reason().contains("metadata"));
    assertTrue(p.decide("self.example.com", 443, DNS).reason().contains("this host"));
    EgressDecision mixed = p.decide("mixed.example.com", 443, DNS);
    assertEquals(List.of(ip("203.0.113.9")), mixed.addresses(), "only the public address");

    EgressPolicy named = policy().allowBlock("127.0.0.0/8").allowBlock("10.0.0.0/8").build();
    assertTrue(named.decide("evil.example.com", 443, DNS).allowed(), "a rule that names it");
    assertEquals(2, named.decide("mixed.example.com", 443, DNS).addresses().size());
  }

  /** What a guest sent reaches a decision (and so an error page or an audit record) cleaned. */
  @Test
  void deniedHostsAreCleanedOfControlCharacters() {
    for (String nasty :
        List.of("a\r\nInjected: 1", "x\u001b[31m", "evil\u202egro.ipyp", "a\u0085b")) {
      EgressDecision d = policy().build().decide(nasty, 443, DNS);
      assertFalse(d.allowed());
      assertTrue(
          d.host().codePoints().noneMatch(c -> Character.isISOControl(c) || c == 0x202e), d.host());
      assertTrue(
          d.reason().codePoints().noneMatch(c -> Character.isISOControl(c) || c == 0x202e),
          d.reason());
    }
    assertEquals(
        "port",
        policy().build().decide("a\nb", 22, DNS).rule(),
        "the port check comes first, with the host cleaned all the same");
  }

  @Test
  void addressLiteralsNeedABlockRule() {
    EgressPolicy p = policy().allowBlock("203.0.113.0/24").allowBlock("2001:db8::/32").build();
    assertTrue(p.decide("203.0.113.5", 443, DNS).allowed());
    assertTrue(p.decide("[2001:db8::5]", 443, DNS).allowed());
    assertTrue(p.decide("::ffff:203.0.113.5", 443, DNS).allowed(), "IPv4-mapped is IPv4");
    for (String denied : List.of("8.8.8.8", "127.0.0.1", "169.254.169.254", "[::1]", "::")) {
      assertEquals("address", p.decide(denied, 443, DNS).rule(), denied);
    }
    for (String disguised : List.of("2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1")) {
      assertFalse(p.decide(disguised, 443, DNS).allowed(), disguised);
    }
  }

  @Test
  void rulesThatCannotBeAreRefusedWhenWritten() {
    for (String bad :
        List.of("*.com", "*", "", "a b", "*.*.example.com", "exa*mple.com", "1.2.3")) {
      assertThrows(
          IllegalArgumentException.class, () -> EgressPolicy.builder().allowDomain(bad), bad);
    }
    for (String bad : List.of("10.0.0.1/8", "10.0.0.0/33", "example.com/8", "10.0.0.0")) {
      assertThrows(
          IllegalArgumentException.class, () -> EgressPolicy.builder().allowBlock(bad), bad);
    }
    assertThrows(IllegalArgumentException.class, () -> EgressPolicy.builder().ports(0));
    assertTrue(
        EgressPolicy.builder()
            .allowDomain("bücher.example")
            .build()
            .toString()
            .contains("xn--bcher-kva.example"),
        "IDN rules are kept in ASCII");
    assertFalse(EgressPolicy.none().decide("pypi.org", 443, DNS).allowed());
  }

  /** Whatever a guest asks for: a decision, never an exception; allowed means checked addresses. */
  @Test
  void anyHostStringGetsADecision() {
    EgressPolicy p = policy().build();
    EgressResolver anything =
        name -> List.of(ip(name.length() % 2 == 0 ? "10.0.0.1" : "203.0.113.1"));
    qt().withExamples(3000)
        .forAll(strings().allPossible().ofLengthBetween(0, 80), integers().between(-5, 70000))
        .checkAssert(
            (host, port) -> {
              EgressDecision d = p.decide(host, port, anything);
              if (d.allowed()) {
                assertTrue(port == 80 || port == 443, d.toString());
                for (InetAddress a : d.addresses()) {
                  assertEquals(null, SpecialAddresses.why(a, Set.of()), d.toString());
                }
              }
            });
  }

  @Test
  void blocksContainWhatTheirPrefixSays() {
    qt().forAll(integers().all(), integers().between(0, 32))
        .checkAssert(
            (bits, prefix) -> {
              long mask = prefix == 0 ? 0 : (0xffffffffL << (32 - prefix)) & 0xffffffffL;
              long net = bits & mask;
              AddressBlock b = AddressBlock.parse(dotted(net) + "/" + prefix);
              assertTrue(b.contains(ip(dotted(bits & 0xffffffffL))));
              long outside = (bits & 0xffffffffL) ^ (prefix == 0 ? 0 : 1L << (32 - prefix));
              assertEquals(prefix == 0, b.contains(ip(dotted(outside))));
            });
  }

  private static String dotted(long v) {
    return ((v >> 24) & 0xff)
        + "."
        + ((v >> 16) & 0xff)
        + "."
        + ((v >> 8) & 0xff)
        + "."
        + (v & 0xff);
  }
}
