package dev.agentvm.network;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.NetworkAttachment;
import dev.agentvm.core.spi.DomainDescription;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates, checks and removes the libvirt networks and nwfilters agent-vm owns. Every operation is
 * idempotent: {@code ensure} defines what is missing, verifies what is there, and never changes an
 * object agent-vm did not create (names carry the {@code agentvm-} prefix; networks a metadata
 * marker and a UUID derived from the name, filters that UUID). Thread-safe.
 *
 * <pre>{@code
 * Networks nets = new Networks(conn);
 * NetworkSpec net = NetworkSpec.natFiltered("agentvm-nat", "10.213.5.0/24");
 * FilterSpec allow = FilterSpec.withDefaults("agentvm-allow-web", AllowRule.tcp(8080));
 * nets.ensure(net);
 * nets.ensure(allow);
 * IpAllocator.Reservation ip = new IpAllocator(conn, net).allocate(vmName, MacAddresses.random());
 * VMTemplate t = builder.nic(nets.nic(net, allow, ip)).build();
 * }</pre>
 */
public final class Networks {
  private static final Logger LOG = LoggerFactory.getLogger(Networks.class);

  private final LibvirtConnection conn;

  public Networks(LibvirtConnection conn) {
    this.conn = Objects.requireNonNull(conn, "conn");
  }

  /**
   * Defines the network if absent and starts it if stopped; if present, checks that it is ours and
   * the same.
   *
   * @throws NetworkConflictException if a network of that name is not agent-vm's, or differs
   */
  public synchronized void ensure(NetworkSpec spec) {
    ensureDefined(spec);
    if (!conn.backend().networks().isNetworkActive(spec.name())) {
      conn.backend().networks().startNetwork(spec.name());
      LOG.debug("started network {}", spec.name());
    }
  }

  /**
   * Like {@link #ensure(NetworkSpec)}, but does not start the network (for reservations made ahead,
   * or a definition checked without touching the host's bridges and firewall).
   */
  public synchronized void ensureDefined(NetworkSpec spec) {
    Optional<String> existing = conn.backend().networks().networkXml(spec.name());
    if (existing.isEmpty()) {
      conn.backend().networks().defineNetwork(NetworkXml.network(spec));
      LOG.info("defined network {} ({}, {})", spec.name(), spec.mode(), spec.subnet());
    } else {
      NetworkSpec there = ownedNetwork(spec.name(), existing.get());
      if (!there.equals(spec)) {
        throw new NetworkConflictException(
            "network "
                + spec.name()
                + " exists as "
                + there
                + ", not as "
                + spec
                + "; remove it (Networks.removeIfUnused) or choose another name");
      }
    }
  }

  /**
   * Defines the filter if absent, or updates it if it is ours and differs (libvirt applies the new
   * rules to running VMs at once).
   *
   * @throws NetworkConflictException if a filter of that name is not agent-vm's
   */
  public synchronized void ensure(FilterSpec spec) {
    Optional<String> existing = conn.backend().networks().filterXml(spec.name());
    if (existing.isPresent()) {
      if (!spec.uuid().toString().equals(NetworkXml.uuidOf(existing.get()))) {
        throw new NetworkConflictException(
            "nwfilter " + spec.name() + " exists but was not made by agent-vm; it is left alone");
      }
      if (NetworkXml.parseFilter(existing.get()).equals(spec)) {
        return;
      }
      LOG.info("updating nwfilter {}", spec.name());
    } else {
      LOG.info("defining nwfilter {}", spec.name());
    }
    conn.backend().networks().defineFilter(NetworkXml.filter(spec));
  }

  /** What libvirt holds for a network of ours, read back. */
  public Optional<NetworkSpec> read(String network) {
    return conn.backend().networks().networkXml(network).map(xml -> ownedNetwork(network, xml));
  }

  /** What libvirt holds for a filter of ours, read back. */
  public Optional<FilterSpec> readFilter(String filter) {
    return conn.backend().networks().filterXml(filter).map(NetworkXml::parseFilter);
  }

  private static NetworkSpec ownedNetwork(String name, String xml) {
    NetworkSpec there = NetworkXml.parseNetwork(xml);
    if (there == null || !there.uuid().toString().equals(NetworkXml.uuidOf(xml))) {
      throw new NetworkConflictException(
          "network " + name + " exists but was not made by agent-vm; it is left alone");
    }
    return there;
  }

  /**
   * A NIC on an agent-vm network, filtered by {@code filter} (or unfiltered if null). The filter
   * gets the network's host address and subnet as parameters; libvirt learns the VM's IP address
   * from the DHCP answer it gets (from the network's own DHCP server where the network has one) and
   * holds it to that one. Until then only DHCP passes: libvirt's default way of learning lets every
   * IPv4 packet through until the first one names an address, and a guest's first connections would
   * escape the filter. So such a NIC needs a DHCP server on its network: a guest that never asks
   * one (a static address, a network without DHCP) gets nothing through. Prefer {@link
   * #nic(NetworkSpec, FilterSpec, IpAllocator.Reservation)}, which fixes the address in advance (a
   * reservation of your own for a static address).
   */
  public NetworkAttachment nic(NetworkSpec network, @Nullable FilterSpec filter, String mac) {
    return attachment(network, filter, mac, null);
  }

  /**
   * A NIC with the MAC and address of {@code reservation}: the filter's anti-spoofing rules
   * (clean-traffic) only let the VM send from, and answer ARP for, that address.
   */
  public NetworkAttachment nic(
      NetworkSpec network, @Nullable FilterSpec filter, IpAllocator.Reservation reservation) {
    return attachment(network, filter, reservation);
  }

  static NetworkAttachment attachment(
      NetworkSpec network, @Nullable FilterSpec filter, IpAllocator.Reservation reservation) {
    if (!network.name().equals(reservation.network())) {
      throw new IllegalArgumentException(
          "the reservation is on " + reservation.network() + ", not on " + network.name());
    }
    return attachment(network, filter, reservation.mac(), reservation.ip());
  }

  static NetworkAttachment attachment(
      NetworkSpec network, @Nullable FilterSpec filter, String mac, @Nullable String ip) {
    if (filter == null) {
      return new NetworkAttachment(
          NetworkAttachment.Kind.NETWORK, network.name(), mac, "", Map.of());
    }
    return new NetworkAttachment(
        NetworkAttachment.Kind.NETWORK,
        network.name(),
        mac,
        filter.name(),
        filterParameters(network, ip));
  }

  /**
   * The values of the filter's parameters on {@code network}. A layer-2 network has no host address
   * or subnet of its own: 0.0.0.0/32 stands in (inside the denied 0.0.0.0/8, so nothing opens).
   */
  static Map<String, String> filterParameters(NetworkSpec network, @Nullable String ip) {
    Map<String, String> p = new java.util.TreeMap<>();
    Cidr subnet = network.subnet();
    String host = network.hostAddress();
    p.put(NetworkXml.HOST_PARAM, host == null ? "0.0.0.0" : host);
    p.put(NetworkXml.NET_PARAM, subnet == null ? "0.0.0.0" : subnet.address());
    p.put(NetworkXml.NETMASK_PARAM, subnet == null ? "32" : Integer.toString(subnet.prefix()));
    p.put(NetworkXml.DHCP_PARAM, host == null ? "0.0.0.0" : host);
    p.put(NetworkXml.DHCP_MASK_PARAM, host == null ? "0" : "32");
    if (ip != null) {
      p.put("IP", ip);
    } else {
      // learnt from DHCP only, nothing but DHCP passing before (libvirt's "any" lets IPv4 through)
      p.put("CTRL_IP_LEARNING", "dhcp");
      if (host != null) {
        p.put("DHCPSERVER", host); // the network's dnsmasq, not a peer answering DHCP
      }
    }
    return p;
  }

  /** A NIC on an existing host bridge ({@link NetworkMode#BRIDGE}), unfiltered. */
  public static NetworkAttachment bridgeNic(String bridge, String mac) {
    return new NetworkAttachment(NetworkAttachment.Kind.BRIDGE, bridge, mac, "", Map.of());
  }

  /**
   * Removes an agent-vm network or filter that no domain refers to.
   *
   * @return true if it was removed; false if a domain still uses it, it is not agent-vm's, or it
   *     does not exist
   */
  public synchronized boolean removeIfUnused(String name) {
    if (!name.startsWith(NetworkSpec.PREFIX) || !usersOf(name).isEmpty()) {
      return false;
    }
    boolean removed = false;
    Optional<String> net = conn.backend().networks().networkXml(name);
    if (net.isPresent() && NetworkXml.parseNetwork(net.get()) != null) {
      if (conn.backend().networks().isNetworkActive(name)) {
        conn.backend().networks().stopNetwork(name);
      }
      conn.backend().networks().undefineNetwork(name);
      LOG.info("removed network {}", name);
      removed = true;
    }
    Optional<String> filter = conn.backend().networks().filterXml(name);
    if (filter.isPresent()) {
      FilterSpec f = NetworkXml.parseFilter(filter.get());
      if (f.uuid().toString().equals(NetworkXml.uuidOf(filter.get()))) {
        conn.backend().networks().undefineFilter(name);
        LOG.info("removed nwfilter {}", name);
        removed = true;
      }
    }
    return removed;
  }

  /** Removes every agent-vm network and filter no domain uses; returns their names. */
  public synchronized List<String> removeUnused() {
    List<String> removed = new ArrayList<>();
    List<String> names = new ArrayList<>(conn.backend().networks().networkNames());
    names.addAll(conn.backend().networks().filterNames());
    for (String n : names) {
      if (n.startsWith(NetworkSpec.PREFIX) && !removed.contains(n) && removeIfUnused(n)) {
        removed.add(n);
      }
    }
    return removed;
  }

  /** Domains whose definition names this network or filter. */
  public List<String> usersOf(String name) {
    List<String> users = new ArrayList<>();
    for (String d : conn.domainNames()) {
      conn.backend()
          .lookup(d)
          .ifPresent(
              h -> {
                DomainDescription def;
                try {
                  def = h.description();
                } catch (RuntimeException e) {
                  return; // gone meanwhile
                }
                if (def.networks().contains(name) || def.filters().contains(name)) {
                  users.add(d);
                }
              });
    }
    return users;
  }
}
