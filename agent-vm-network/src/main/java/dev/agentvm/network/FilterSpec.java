package dev.agentvm.network;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * An nwfilter allow-list for a VM's NIC: ARP and the VM's own DHCP always; the listed outbound
 * connections (and their replies); established and related traffic in; everything else dropped,
 * unsolicited inbound connections included. MAC spoofing is refused too.
 *
 * @param name {@code agentvm-...}
 * @param allowed what the VM may connect to
 */
public record FilterSpec(String name, List<AllowRule> allowed) {
  private static final Pattern NAME = Pattern.compile("agentvm-[A-Za-z0-9_.-]{1,56}");

  /** DNS (UDP and TCP), HTTP, HTTPS and SSH, to anywhere: what coding agents usually need. */
  public static final List<AllowRule> DEFAULT_ALLOWED =
      List.of(
          AllowRule.udp(53),
          AllowRule.tcp(53),
          AllowRule.tcp(80),
          AllowRule.tcp(443),
          AllowRule.tcp(22));

  public FilterSpec {
    Objects.requireNonNull(name, "name");
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "name must be agentvm- and 1-56 of [A-Za-z0-9_.-], was '" + name + "'");
    }
    allowed = List.copyOf(allowed);
  }

  /** The default allow-list plus {@code extra}. */
  public static FilterSpec withDefaults(String name, AllowRule... extra) {
    List<AllowRule> all = new java.util.ArrayList<>(DEFAULT_ALLOWED);
    all.addAll(List.of(extra));
    return new FilterSpec(name, all);
  }

  /** The UUID agent-vm gives this filter: derived from the name, so ownership can be checked. */
  public UUID uuid() {
    return UUID.nameUUIDFromBytes(("agent-vm nwfilter " + name).getBytes(StandardCharsets.UTF_8));
  }
}
