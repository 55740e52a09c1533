package dev.agentvm.network.egress;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Arrays;
import java.util.Objects;

/**
 * A block of IPv4 or IPv6 addresses, e.g. {@code 10.0.0.0/8} or {@code fd00::/8}. An IPv4 address
 * given as IPv4-mapped IPv6 ({@code ::ffff:10.0.0.1}) is judged as the IPv4 address it is.
 */
public final class AddressBlock {
  private final byte[] network;
  private final int prefix;

  private AddressBlock(byte[] network, int prefix) {
    this.network = network;
    this.prefix = prefix;
  }

  /**
   * Parses {@code address/prefix} (the address a literal, never a name).
   *
   * @throws IllegalArgumentException if it is not one, or has host bits set
   */
  public static AddressBlock parse(String cidr) {
    Objects.requireNonNull(cidr, "cidr");
    int slash = cidr.indexOf('/');
    if (slash < 0) {
      throw new IllegalArgumentException("not an address block: '" + cidr + "' (want a/n)");
    }
    InetAddress a =
        literal(cidr.substring(0, slash))
            .orElseThrow(() -> new IllegalArgumentException("not an IP address: '" + cidr + "'"));
    byte[] bytes = a.getAddress();
    int prefix;
    try {
      prefix = Integer.parseInt(cidr.substring(slash + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("not a prefix length: '" + cidr + "'");
    }
    if (prefix < 0 || prefix > bytes.length * 8) {
      throw new IllegalArgumentException("prefix out of range in '" + cidr + "'");
    }
    if (!Arrays.equals(bytes, masked(bytes, prefix))) {
      throw new IllegalArgumentException("host bits set in '" + cidr + "'");
    }
    return new AddressBlock(bytes, prefix);
  }

  /**
   * The address if {@code s} is an IPv4 literal in dotted-quad form or an IPv6 literal (brackets
   * allowed); empty otherwise. Never resolves a name, and refuses the short and octal forms that
   * {@link InetAddress#getByName} would take ({@code 127.1}, {@code 0177.0.0.1}).
   */
  public static java.util.Optional<InetAddress> literal(String s) {
    String t = s.startsWith("[") && s.endsWith("]") ? s.substring(1, s.length() - 1) : s;
    try {
      if (t.matches(
          "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")) {
        return java.util.Optional.of(normalize(InetAddress.getByName(t)));
      }
      if (t.indexOf(':') >= 0 && t.matches("[0-9A-Fa-f:.]+")) {
        return java.util.Optional.of(normalize(InetAddress.getByName(t)));
      }
    } catch (UnknownHostException e) {
      // a malformed literal: not an address
    }
    return java.util.Optional.empty();
  }

  /** An IPv4-mapped IPv6 address as the IPv4 address it carries; any other unchanged. */
  static InetAddress normalize(InetAddress a) {
    byte[] b = a.getAddress();
    if (a instanceof Inet6Address && b.length == 16) {
      boolean mapped = b[10] == (byte) 0xff && b[11] == (byte) 0xff;
      for (int i = 0; i < 10 && mapped; i++) {
        mapped = b[i] == 0;
      }
      if (mapped) {
        try {
          return InetAddress.getByAddress(Arrays.copyOfRange(b, 12, 16));
        } catch (UnknownHostException e) {
          throw new IllegalStateException("4 bytes are an IPv4 address", e);
        }
      }
    }
    return a;
  }

  /** Whether {@code address} lies in this block. */
  public boolean contains(InetAddress address) {
    byte[] b = normalize(address).getAddress();
    return b.length == network.length && Arrays.equals(masked(b, prefix), network);
  }

  /** Whether this is an IPv4 block. */
  public boolean isIpv4() {
    return network.length == 4;
  }

  private static byte[] masked(byte[] a, int prefix) {
    byte[] m = a.clone();
    for (int i = 0; i < m.length; i++) {
      int keep = Math.max(0, Math.min(8, prefix - i * 8));
      m[i] = (byte) (m[i] & (0xff << (8 - keep)));
    }
    return m;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof AddressBlock b && b.prefix == prefix && Arrays.equals(b.network, network);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(network) * 31 + prefix;
  }

  @Override
  public String toString() {
    try {
      String a = InetAddress.getByAddress(network).getHostAddress();
      return a + "/" + prefix;
    } catch (UnknownHostException e) {
      throw new IllegalStateException(e);
    }
  }

  static boolean isV4(InetAddress a) {
    return normalize(a) instanceof Inet4Address;
  }
}
