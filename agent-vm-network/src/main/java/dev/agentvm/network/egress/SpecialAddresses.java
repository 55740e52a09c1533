package dev.agentvm.network.egress;

import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;

/**
 * Addresses a guest must not reach unless a rule names them: this host, its neighbours and the
 * cloud's services rather than the public internet.
 */
final class SpecialAddresses {
  private SpecialAddresses() {}

  /** Each block with what it is, in the order they are checked. */
  private static final Map<AddressBlock, String> BLOCKS = blocks();

  private static Map<AddressBlock, String> blocks() {
    Map<AddressBlock, String> m = new java.util.LinkedHashMap<>();
    m.put(AddressBlock.parse("0.0.0.0/8"), "an unspecified address (0.0.0.0/8)");
    m.put(AddressBlock.parse("127.0.0.0/8"), "loopback (127.0.0.0/8)");
    m.put(
        AddressBlock.parse("169.254.0.0/16"),
        "link-local (169.254.0.0/16, the cloud metadata service among them)");
    m.put(AddressBlock.parse("10.0.0.0/8"), "private (RFC 1918, 10.0.0.0/8)");
    m.put(AddressBlock.parse("172.16.0.0/12"), "private (RFC 1918, 172.16.0.0/12)");
    m.put(AddressBlock.parse("192.168.0.0/16"), "private (RFC 1918, 192.168.0.0/16)");
    m.put(AddressBlock.parse("100.64.0.0/10"), "shared address space (100.64.0.0/10)");
    m.put(AddressBlock.parse("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)");
    m.put(AddressBlock.parse("198.18.0.0/15"), "benchmarking (198.18.0.0/15)");
    m.put(AddressBlock.parse("224.0.0.0/4"), "multicast (224.0.0.0/4)");
    m.put(AddressBlock.parse("240.0.0.0/4"), "reserved (240.0.0.0/4, broadcast among them)");
    m.put(AddressBlock.parse("::/128"), "the unspecified IPv6 address");
    m.put(AddressBlock.parse("::1/128"), "loopback (::1)");
    m.put(AddressBlock.parse("::/96"), "IPv4-compatible IPv6 (::/96, may reach any IPv4 address)");
    m.put(AddressBlock.parse("fec0::/10"), "site-local (fec0::/10)");
    m.put(AddressBlock.parse("2001::/32"), "Teredo (2001::/32, may reach any IPv4 address)");
    m.put(
        AddressBlock.parse("64:ff9b:1::/48"),
        "local-use NAT64 (64:ff9b:1::/48, may reach any IPv4 address)");
    m.put(AddressBlock.parse("fe80::/10"), "link-local (fe80::/10)");
    m.put(AddressBlock.parse("fc00::/7"), "unique local (fc00::/7)");
    m.put(AddressBlock.parse("ff00::/8"), "multicast (ff00::/8)");
    m.put(AddressBlock.parse("64:ff9b::/96"), "NAT64 (64:ff9b::/96, may reach any IPv4 address)");
    m.put(AddressBlock.parse("2002::/16"), "6to4 (2002::/16, may reach any IPv4 address)");
    return Collections.unmodifiableMap(m);
  }

  /** What {@code a} is if a guest must not reach it by default; null for a public address. */
  static @Nullable String why(InetAddress a, Set<InetAddress> ownAddresses) {
    InetAddress n = AddressBlock.normalize(a);
    for (Map.Entry<AddressBlock, String> e : BLOCKS.entrySet()) {
      if (e.getKey().contains(n)) {
        return e.getValue();
      }
    }
    if (ownAddresses.contains(n)) {
      return "an address of this host";
    }
    return null;
  }

  /** This host's own addresses, every interface; empty if they cannot be listed. */
  static Set<InetAddress> ownAddresses() {
    List<InetAddress> all = new ArrayList<>();
    try {
      for (NetworkInterface i : Collections.list(NetworkInterface.getNetworkInterfaces())) {
        Collections.list(i.getInetAddresses()).forEach(all::add);
      }
    } catch (SocketException e) {
      return Set.of();
    }
    return all.stream().map(AddressBlock::normalize).collect(Collectors.toUnmodifiableSet());
  }
}
