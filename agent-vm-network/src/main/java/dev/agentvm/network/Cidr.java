package dev.agentvm.network;

import java.util.Objects;

/**
 * An IPv4 network, e.g. {@code 10.213.0.0/24}.
 *
 * @param address the network address (host bits zero)
 * @param prefix the prefix length, 0..32
 */
public record Cidr(String address, int prefix) {
  public Cidr {
    Objects.requireNonNull(address, "address");
    if (prefix < 0 || prefix > 32) {
      throw new IllegalArgumentException("prefix must be 0..32, was " + prefix);
    }
    Ipv4 a = Ipv4.parse(address);
    if ((a.bits() & ~Ipv4.mask(prefix).bits()) != 0) {
      throw new IllegalArgumentException(
          "host bits must be zero in "
              + address
              + "/"
              + prefix
              + " (network "
              + network(a, prefix)
              + ")");
    }
    address = a.toString();
  }

  private static Ipv4 network(Ipv4 a, int prefix) {
    return new Ipv4(a.bits() & Ipv4.mask(prefix).bits());
  }

  /** Parses {@code a.b.c.d/n}. */
  public static Cidr parse(String s) {
    int slash = s.indexOf('/');
    if (slash < 0) {
      throw new IllegalArgumentException("not a CIDR: '" + s + "' (want a.b.c.d/n)");
    }
    try {
      return new Cidr(s.substring(0, slash), Integer.parseInt(s.substring(slash + 1)));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("not a CIDR: '" + s + "'");
    }
  }

  /** The dotted netmask, e.g. 255.255.255.0. */
  public String netmask() {
    return Ipv4.mask(prefix).toString();
  }

  /** The {@code n}-th address of the network (0 is the network address itself). */
  public String host(int n) {
    if (n < 0 || (prefix < 32 && Integer.toUnsignedLong(n) >= (1L << (32 - prefix)))) {
      throw new IllegalArgumentException("host " + n + " is outside " + this);
    }
    return Ipv4.parse(address).plus(n).toString();
  }

  /** Whether {@code ip} lies in this network. */
  public boolean contains(String ip) {
    return (Ipv4.parse(ip).bits() & Ipv4.mask(prefix).bits()) == Ipv4.parse(address).bits();
  }

  @Override
  public String toString() {
    return address + "/" + prefix;
  }
}
