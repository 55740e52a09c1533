package dev.agentvm.network;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * An nwfilter allow-list for a VM's NIC. What it lets through, in the order libvirt evaluates it
 * (lower priority first):
 *
 * <ol>
 *   <li>libvirt's {@code clean-traffic}: the VM may only send from its own MAC and IP address (the
 *       reserved one when the NIC comes from {@link Networks#nic(NetworkSpec, FilterSpec,
 *       IpAllocator.Reservation)}, else the one its DHCP answer gave, nothing but DHCP passing
 *       before), ARP only for that address; other layer-2 protocols are dropped;
 *   <li>the VM's own DHCP (answers only from the network's DHCP server, the host's address), and
 *       DNS to the host's address on the network;
 *   <li>the allowed connections that name a destination network, and traffic to and from other VMs
 *       on the network if {@link #peers} is set;
 *   <li>everything else to the host's address on the network, to the network's own subnet (other
 *       VMs), and to non-public destinations ({@link #DENIED}) is dropped;
 *   <li>the allowed connections to any destination: so these reach the public internet only;
 *   <li>established and related traffic in; everything else dropped, unsolicited inbound
 *       connections and all IPv6 included.
 * </ol>
 *
 * <p>A rule that names a private, link-local or other denied network therefore works (it is
 * evaluated before the denials), while a rule without a destination never reaches one.
 *
 * @param name {@code agentvm-...}
 * @param allowed what the VM may connect to; rules that name a destination are kept first
 * @param peers whether VMs on the same network may connect to each other (default false)
 */
public record FilterSpec(String name, List<AllowRule> allowed, boolean peers) {
  private static final Pattern NAME = Pattern.compile("agentvm-[A-Za-z0-9_.-]{1,56}");

  /** DNS (UDP and TCP), HTTP, HTTPS and SSH, to anywhere: what coding agents usually need. */
  public static final List<AllowRule> DEFAULT_ALLOWED =
      List.of(
          AllowRule.udp(53),
          AllowRule.tcp(53),
          AllowRule.tcp(80),
          AllowRule.tcp(443),
          AllowRule.tcp(22));

  /**
   * Destinations a rule without a destination never reaches: "this network" 0/8, RFC 1918, shared
   * address space 100.64/10, loopback, link-local (the cloud metadata service 169.254.169.254 among
   * them), multicast and the reserved 240/4 (with the broadcast address).
   */
  public static final List<Cidr> DENIED =
      List.of(
          Cidr.parse("0.0.0.0/8"),
          Cidr.parse("10.0.0.0/8"),
          Cidr.parse("100.64.0.0/10"),
          Cidr.parse("127.0.0.0/8"),
          Cidr.parse("169.254.0.0/16"),
          Cidr.parse("172.16.0.0/12"),
          Cidr.parse("192.168.0.0/16"),
          Cidr.parse("224.0.0.0/4"),
          Cidr.parse("240.0.0.0/4"));

  public FilterSpec {
    Objects.requireNonNull(name, "name");
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "name must be agentvm- and 1-56 of [A-Za-z0-9_.-], was '" + name + "'");
    }
    // libvirt orders rules by priority, and named destinations come before the denials: keep the
    // same order here so that a filter read back equals the one defined
    List<AllowRule> named = new ArrayList<>();
    List<AllowRule> any = new ArrayList<>();
    for (AllowRule a : allowed) {
      if (a.destination() == null) {
        any.add(a);
      } else {
        named.add(a);
      }
    }
    named.addAll(any);
    allowed = List.copyOf(named);
  }

  /** A filter in which VMs on one network cannot reach each other. */
  public FilterSpec(String name, List<AllowRule> allowed) {
    this(name, allowed, false);
  }

  /** The default allow-list plus {@code extra}. */
  public static FilterSpec withDefaults(String name, AllowRule... extra) {
    List<AllowRule> all = new ArrayList<>(DEFAULT_ALLOWED);
    all.addAll(List.of(extra));
    return new FilterSpec(name, all);
  }

  /** The same filter, with traffic between VMs on the network allowed (both ways, any port). */
  public FilterSpec withPeers() {
    return new FilterSpec(name, allowed, true);
  }

  /** The UUID agent-vm gives this filter: derived from the name, so ownership can be checked. */
  public UUID uuid() {
    return UUID.nameUUIDFromBytes(("agent-vm nwfilter " + name).getBytes(StandardCharsets.UTF_8));
  }
}
