package dev.agentvm.network.egress;

import java.net.InetAddress;
import java.util.List;
import java.util.Objects;

/**
 * What the policy said about one connection.
 *
 * @param allowed whether it may be made
 * @param host the destination as asked for (a name, lower case, or an address literal)
 * @param port the destination port
 * @param addresses where it may connect: the checked addresses, and only those (connecting to
 *     anything else, e.g. a fresh lookup, would reopen DNS rebinding); empty when denied
 * @param rule the rule that allowed it, or the check that denied it
 * @param reason why, in words for the proxy's error page and the audit record
 */
public record EgressDecision(
    boolean allowed,
    String host,
    int port,
    List<InetAddress> addresses,
    String rule,
    String reason) {
  public EgressDecision {
    Objects.requireNonNull(host, "host");
    addresses = List.copyOf(addresses);
    Objects.requireNonNull(rule, "rule");
    Objects.requireNonNull(reason, "reason");
    if (allowed == addresses.isEmpty()) {
      throw new IllegalArgumentException("an allowed decision has addresses, a denied one none");
    }
  }

  static EgressDecision deny(String host, int port, String rule, String reason) {
    return new EgressDecision(false, host, port, List.of(), rule, reason);
  }
}
