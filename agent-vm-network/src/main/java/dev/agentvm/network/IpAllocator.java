package dev.agentvm.network;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.FileLocks;
import dev.agentvm.internal.ProcessOwners;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives VMs fixed addresses on an agent-vm network: a DHCP host reservation per VM in the network's
 * libvirt definition (libvirt's dnsmasq then always hands that VM that address). Safe across
 * threads and processes: the choice and the reservation are made under a JVM lock and a file lock,
 * and libvirt's own reservations are the truth about which addresses are taken. Who reserved what
 * is kept in an atomically replaced JSON file beside the lock, so that reservations of processes
 * that died are reclaimed ({@link #reclaim}). Each libvirt host has bookkeeping of its own ({@link
 * #stateDir}).
 *
 * <pre>{@code
 * IpAllocator ips = new IpAllocator(conn, net);
 * IpAllocator.Reservation r = ips.allocate(vmName, MacAddresses.random());
 * ...
 * ips.release(r.mac());
 * }</pre>
 */
public final class IpAllocator {
  private static final Logger LOG = LoggerFactory.getLogger(IpAllocator.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  /**
   * An address reserved for a VM.
   *
   * @param network the network
   * @param mac the VM's MAC
   * @param ip its address
   * @param vm the VM's name
   */
  public record Reservation(String network, String mac, String ip, String vm) {}

  private final LibvirtConnection conn;
  private final NetworkSpec network;
  private final Path lockFile;
  private final Path ownersFile;

  /** With the lock and owners files in {@link #stateDir(LibvirtConnection) conn's host's}. */
  public IpAllocator(LibvirtConnection conn, NetworkSpec network) {
    this(conn, network, stateDir(conn));
  }

  /**
   * Where the bookkeeping of {@code conn}'s host is kept: {@code <state>/networks} for this
   * machine's libvirt, {@code <state>/networks/.hosts/<hash of the host's URI>} for another host
   * ({@link AgentVmPaths#hostIdentity}: two spellings of one host share it; two hosts' networks of
   * one name are two networks, each with its own reservations and lock). The lock serialises this
   * machine's processes only, not clients on other machines that reserve on the same host.
   */
  public static Path stateDir(LibvirtConnection conn) {
    Path all = AgentVmPaths.stateRoot().resolve("networks");
    return conn.backend().isLocal()
        ? all
        : AgentVmPaths.forHost(all, AgentVmPaths.hostIdentity(conn.uri()));
  }

  /** With the lock and owners files under {@code stateDir}. */
  public IpAllocator(LibvirtConnection conn, NetworkSpec network, Path stateDir) {
    this.conn = Objects.requireNonNull(conn, "conn");
    this.network = Objects.requireNonNull(network, "network");
    if (network.subnet() == null) {
      throw new IllegalArgumentException(network.name() + " has no subnet to allocate from");
    }
    this.lockFile = stateDir.toAbsolutePath().resolve(network.name() + ".lock");
    this.ownersFile = stateDir.toAbsolutePath().resolve(network.name() + ".owners.json");
  }

  /**
   * Reserves the lowest free address of the DHCP range for {@code mac}.
   *
   * @throws NetworkConflictException if the MAC already has a reservation, or no address is free
   */
  public Reservation allocate(String vm, String mac) {
    return locked(
        () -> {
          String xml = definition();
          Set<String> usedIps = new HashSet<>();
          for (String[] h : NetworkXml.dhcpHosts(xml)) {
            if (h[0].equalsIgnoreCase(mac)) {
              throw new NetworkConflictException(
                  "MAC " + mac + " already has address " + h[1] + " on " + network.name());
            }
            usedIps.add(h[1]);
          }
          // the constructor refused a network without a subnet, so both ends exist
          Ipv4 end = Ipv4.parse(Objects.requireNonNull(network.dhcpEnd(), "dhcpEnd"));
          Ipv4 start = Ipv4.parse(Objects.requireNonNull(network.dhcpStart(), "dhcpStart"));
          for (Ipv4 ip = start; ip.compareTo(end) <= 0; ip = ip.plus(1)) {
            if (usedIps.contains(ip.toString())) {
              continue;
            }
            conn.backend()
                .networks()
                .updateDhcpHost(network.name(), true, NetworkXml.dhcpHost(mac, ip.toString(), vm));
            ObjectNode owners = readOwners();
            ObjectNode o = owners.putObject(mac);
            o.put("owner", LibvirtConnection.processOwner());
            o.put("vm", vm);
            o.put("ip", ip.toString());
            writeOwners(owners);
            LOG.debug("{}: {} -> {} ({})", network.name(), mac, ip, vm);
            return new Reservation(network.name(), mac, ip.toString(), vm);
          }
          throw new NetworkConflictException(
              "no free address on " + network.name() + " (" + usedIps.size() + " reserved)");
        });
  }

  /** Removes the reservation of {@code mac}; does nothing if there is none. */
  public void release(String mac) {
    locked(
        () -> {
          removeLocked(mac, definition());
          return Boolean.TRUE; // Locked wants a result; there is none
        });
  }

  private boolean removeLocked(String mac, String xml) throws IOException {
    boolean removed = false;
    for (String[] h : NetworkXml.dhcpHosts(xml)) {
      if (h[0].equalsIgnoreCase(mac)) {
        conn.backend()
            .networks()
            .updateDhcpHost(network.name(), false, NetworkXml.dhcpHost(h[0], h[1], h[2]));
        removed = true;
      }
    }
    ObjectNode owners = readOwners();
    if (owners.remove(mac) != null) {
      writeOwners(owners);
    }
    return removed;
  }

  /**
   * Removes the reservations whose owning process is gone and whose VM no longer exists.
   *
   * @return how many were removed
   */
  public int reclaim() {
    return locked(
        () -> {
          ObjectNode owners = readOwners();
          List<String> domains = conn.domainNames();
          int n = 0;
          String xml = definition();
          for (Iterator<String> it = owners.fieldNames(); it.hasNext(); ) {
            String mac = it.next();
            var o = owners.get(mac);
            if (!ProcessOwners.isAlive(o.path("owner").asText())
                && !domains.contains(o.path("vm").asText())) {
              it.remove();
              for (String[] h : NetworkXml.dhcpHosts(xml)) {
                if (h[0].equalsIgnoreCase(mac)) {
                  conn.backend()
                      .networks()
                      .updateDhcpHost(network.name(), false, NetworkXml.dhcpHost(h[0], h[1], h[2]));
                }
              }
              n++;
            }
          }
          writeOwners(owners);
          if (n > 0) {
            LOG.info("{}: reclaimed {} reservations of processes that are gone", network.name(), n);
          }
          return n;
        });
  }

  /** The reservations libvirt holds on this network. */
  public List<Reservation> reservations() {
    return NetworkXml.dhcpHosts(definition()).stream()
        .map(h -> new Reservation(network.name(), h[0], h[1], h[2]))
        .toList();
  }

  private String definition() {
    return conn.backend()
        .networks()
        .networkXml(network.name())
        .orElseThrow(
            () -> new NetworkConflictException("network " + network.name() + " does not exist"));
  }

  private <T> T locked(FileLocks.Locked<T> body) {
    try {
      return FileLocks.withLock(lockFile, body);
    } catch (IOException e) {
      throw new NetworkConflictException("address bookkeeping in " + lockFile + ": " + e);
    }
  }

  private ObjectNode readOwners() throws IOException {
    if (!Files.exists(ownersFile)) {
      return JSON.createObjectNode();
    }
    return (ObjectNode) JSON.readTree(ownersFile.toFile());
  }

  private void writeOwners(ObjectNode owners) throws IOException {
    Path tmp = ownersFile.resolveSibling(ownersFile.getFileName() + ".tmp");
    Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(owners));
    Files.move(
        tmp, ownersFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }
}
