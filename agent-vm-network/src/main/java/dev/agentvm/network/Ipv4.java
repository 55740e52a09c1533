package dev.agentvm.network;

/** An IPv4 address as an int, and CIDR arithmetic. */
record Ipv4(int bits) implements Comparable<Ipv4> {
  static Ipv4 parse(String s) {
    String[] p = s.trim().split("\\.", -1);
    if (p.length != 4) {
      throw new IllegalArgumentException("not an IPv4 address: '" + s + "'");
    }
    int v = 0;
    for (String o : p) {
      int n;
      try {
        n = Integer.parseInt(o);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("not an IPv4 address: '" + s + "'");
      }
      if (n < 0 || n > 255 || o.isEmpty() || (o.length() > 1 && o.startsWith("0"))) {
        throw new IllegalArgumentException("not an IPv4 address: '" + s + "'");
      }
      v = (v << 8) | n;
    }
    return new Ipv4(v);
  }

  Ipv4 plus(int n) {
    return new Ipv4(bits + n);
  }

  /** The netmask of a prefix length, e.g. 24 -> 255.255.255.0. */
  static Ipv4 mask(int prefix) {
    return new Ipv4(prefix == 0 ? 0 : -1 << (32 - prefix));
  }

  @Override
  public int compareTo(Ipv4 o) {
    return Integer.compareUnsigned(bits, o.bits);
  }

  @Override
  public String toString() {
    return ((bits >>> 24) & 255)
        + "."
        + ((bits >>> 16) & 255)
        + "."
        + ((bits >>> 8) & 255)
        + "."
        + (bits & 255);
  }
}
