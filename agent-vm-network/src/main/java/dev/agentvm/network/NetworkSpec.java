package dev.agentvm.network;

import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.UUID;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * A libvirt network agent-vm creates and owns, for {@link NetworkMode#ISOLATED} or {@link
 * NetworkMode#NAT_FILTERED}.
 *
 * @param name {@code agentvm-...}, 1-64 of {@code [A-Za-z0-9_.-]}
 * @param mode ISOLATED (no forwarding) or NAT_FILTERED (NAT to the outside)
 * @param subnet the network; the host takes its first address, DHCP hands out from the tenth to the
 *     last but one. {@code null}: a plain layer-2 network with no host address, no DHCP and no NAT
 *     (ISOLATED only): whoever attaches to it brings addresses
 */
public record NetworkSpec(String name, NetworkMode mode, @Nullable Cidr subnet) {
  /** Every network and filter agent-vm creates carries this prefix. */
  public static final String PREFIX = "agentvm-";

  private static final Pattern NAME = Pattern.compile("agentvm-[A-Za-z0-9_.-]{1,56}");

  public NetworkSpec {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(mode, "mode");
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "name must be agentvm- and 1-56 of [A-Za-z0-9_.-], was '" + name + "'");
    }
    if (mode != NetworkMode.ISOLATED && mode != NetworkMode.NAT_FILTERED) {
      throw new IllegalArgumentException(
          "a libvirt network is ISOLATED or NAT_FILTERED; " + mode + " needs none");
    }
    if (subnet == null && mode == NetworkMode.NAT_FILTERED) {
      throw new IllegalArgumentException("a NAT network needs a subnet");
    }
    if (subnet != null && subnet.prefix() > 28) {
      throw new IllegalArgumentException("subnet must be /28 or larger, was " + subnet);
    }
  }

  public static NetworkSpec isolated(String name, String subnet) {
    return new NetworkSpec(name, NetworkMode.ISOLATED, Cidr.parse(subnet));
  }

  /** An isolated layer-2 network: no host address, no DHCP from libvirt. */
  public static NetworkSpec isolatedLayer2(String name) {
    return new NetworkSpec(name, NetworkMode.ISOLATED, null);
  }

  public static NetworkSpec natFiltered(String name, String subnet) {
    return new NetworkSpec(name, NetworkMode.NAT_FILTERED, Cidr.parse(subnet));
  }

  /** The host bridge libvirt makes: at most 15 characters, derived from the name. */
  public String bridge() {
    return "agvm" + Integer.toHexString(name.hashCode() & 0x7fffffff);
  }

  /** The UUID agent-vm gives this network: derived from the name, so ownership can be checked. */
  public UUID uuid() {
    return UUID.nameUUIDFromBytes(("agent-vm network " + name).getBytes(StandardCharsets.UTF_8));
  }

  /** The host's address on the network, or null for a layer-2 network. */
  public @Nullable String hostAddress() {
    return subnet == null ? null : subnet.host(1);
  }

  public @Nullable String dhcpStart() {
    return subnet == null ? null : subnet.host(10);
  }

  public @Nullable String dhcpEnd() {
    return subnet == null ? null : subnet.host((1 << (32 - subnet.prefix())) - 2);
  }
}
