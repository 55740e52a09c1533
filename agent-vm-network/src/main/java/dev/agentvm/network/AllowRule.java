package dev.agentvm.network;

import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * One kind of outbound connection a filtered VM may open: a protocol, a destination port range, and
 * optionally a destination network.
 *
 * @param protocol {@code tcp} or {@code udp}
 * @param destination allowed destinations, or {@code null} for any public destination (see {@link
 *     FilterSpec}); a rule that names a network reaches it even if it is private, link-local or the
 *     host's. {@code 0.0.0.0/0} counts as no destination: it does not open the private ranges
 * @param portStart first port, 1..65535
 * @param portEnd last port, >= portStart
 */
public record AllowRule(String protocol, @Nullable Cidr destination, int portStart, int portEnd) {
  public AllowRule {
    Objects.requireNonNull(protocol, "protocol");
    if (!protocol.equals("tcp") && !protocol.equals("udp")) {
      throw new IllegalArgumentException("protocol must be tcp or udp, was '" + protocol + "'");
    }
    if (portStart < 1 || portStart > 65535 || portEnd < portStart || portEnd > 65535) {
      throw new IllegalArgumentException(
          "ports must be 1 <= start <= end <= 65535, were " + portStart + ".." + portEnd);
    }
    if (destination != null && destination.prefix() == 0) {
      destination = null;
    }
  }

  public static AllowRule tcp(int port) {
    return new AllowRule("tcp", null, port, port);
  }

  public static AllowRule udp(int port) {
    return new AllowRule("udp", null, port, port);
  }

  public static AllowRule tcp(String cidr, int port) {
    return new AllowRule("tcp", Cidr.parse(cidr), port, port);
  }

  public static AllowRule udp(String cidr, int port) {
    return new AllowRule("udp", Cidr.parse(cidr), port, port);
  }
}
