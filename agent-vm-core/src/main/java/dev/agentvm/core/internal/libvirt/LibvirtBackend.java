package dev.agentvm.core.internal.libvirt;

import dev.agentvm.core.ConnectionException;
import dev.agentvm.core.HypervisorException;
import dev.agentvm.core.NoSuchVmException;
import dev.agentvm.core.QemuConfinement;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.DomainLifecycleListener;
import dev.agentvm.core.spi.HypervisorBackend;
import dev.agentvm.core.spi.NetworkBackend;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Setting;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.jspecify.annotations.Nullable;
import org.libvirt.Domain;
import org.libvirt.LibvirtException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The libvirt {@link HypervisorBackend}: the host and its domains here; one domain in {@link
 * LibvirtDomain}, snapshots and memory images in {@link LibvirtSnapshots}, networks and nwfilters
 * in {@link LibvirtNetworks}, channel and console streams in {@link LibvirtStreamConnection}, the
 * connection and its recovery in {@link LibvirtSession}. Domain XML is written by {@link
 * DomainXmlWriter} and read by {@link DomainXmlReader} only. All {@code org.libvirt} use lives in
 * this package.
 */
public final class LibvirtBackend implements HypervisorBackend {
  private static final Logger LOG = LoggerFactory.getLogger(LibvirtBackend.class);

  private final List<DomainLifecycleListener> listeners = new CopyOnWriteArrayList<>();
  private final LibvirtSession session;
  private final LibvirtSnapshots snapshots;
  private final LibvirtNetworks networks;

  /** Whether domains get {@code <memtune>}; a remote host on "auto" can turn it off (see below). */
  private final java.util.concurrent.atomic.AtomicBoolean memoryHardLimit;

  private final boolean learnHardLimit;
  private final @Nullable HostVolumes remote;

  private LibvirtBackend(String uri, Duration retryFor) {
    this.session =
        LibvirtSession.open(
            uri,
            retryFor,
            (domain, event) -> {
              String name;
              try {
                name = domain.getName();
              } catch (LibvirtException e) {
                return 0;
              }
              for (DomainLifecycleListener l : listeners) {
                try {
                  l.onLifecycleEvent(name, String.valueOf(event));
                } catch (RuntimeException e) {
                  LOG.warn("lifecycle listener threw", e);
                }
              }
              return 0;
            });
    String hardLimit = Setting.MEMORY_HARD_LIMIT.valueOr("auto");
    this.memoryHardLimit =
        new java.util.concurrent.atomic.AtomicBoolean(
            QemuConfinement.memoryHardLimitAllowed(uri, hardLimit));
    // a remote daemon's privileges cannot be read from here: try, and learn from its refusal
    this.learnHardLimit = !HostVolumes.isLocal(uri) && hardLimit.equals("auto");
    this.remote = HostVolumes.isLocal(uri) ? null : new HostVolumes(session);
    this.snapshots = new LibvirtSnapshots(session);
    this.networks = new LibvirtNetworks(session);
  }

  /**
   * Opens a connection, retrying transient failures (a daemon that is starting) until {@code
   * retryFor} has passed.
   *
   * @throws ConnectionException naming the URI and libvirt's message
   */
  public static LibvirtBackend open(String uri, Duration retryFor) {
    return new LibvirtBackend(uri, retryFor);
  }

  @Override
  public String uri() {
    return session.uri();
  }

  @Override
  public Set<String> advertisedDomainTypes() {
    return DomainXmlReader.x86DomainTypes(
        session.call("read capabilities", () -> session.connect().getCapabilities()));
  }

  @Override
  public QemuConfinement confinement() {
    Map.Entry<List<String>, String> sec =
        DomainXmlReader.securityModels(
            session.call("read capabilities", () -> session.connect().getCapabilities()));
    return new QemuConfinement(
        uri(),
        sec.getKey(),
        sec.getValue(),
        QemuConfinement.seccompFromQemuConf(uri(), Path.of("/etc/libvirt/qemu.conf")),
        memoryHardLimit.get());
  }

  @Override
  public String versionFingerprint() {
    long lib = session.call("read library version", () -> session.connect().getLibVersion());
    long hv = session.call("read hypervisor version", () -> session.connect().getVersion());
    String host = session.call("read host name", () -> session.connect().getHostName());
    return "host="
        + host
        + " kernel="
        + (remote == null ? System.getProperty("os.version") : "remote")
        + " libvirt="
        + lib
        + " hypervisor="
        + hv;
  }

  @Override
  public DomainHandle define(VMTemplate template, VirtType type) {
    String xml = domainXml(template, type);
    return domain(session.call("define domain", () -> session.connect().domainDefineXML(xml)));
  }

  @Override
  public DomainHandle createTransient(VMTemplate template, VirtType type) {
    String xml = domainXml(template, type);
    try {
      return domain(session.call("create domain", () -> session.connect().domainCreateXML(xml, 0)));
    } catch (HypervisorException e) {
      if (!hardLimitRefused(e)) {
        throw e;
      }
      String without = DomainXmlWriter.withoutMemoryHardLimit(xml);
      return domain(
          session.call("create domain", () -> session.connect().domainCreateXML(without, 0)));
    }
  }

  /**
   * Whether QEMU failed to start because the daemon may not raise its locked-memory limit to the
   * memory hard limit (a libvirtd without CAP_SYS_RESOURCE). On a remote host left on "auto", this
   * turns the hard limit off for the host's later VMs, and the caller starts the VM without it.
   */
  boolean hardLimitRefused(RuntimeException e) {
    if (!learnHardLimit || !String.valueOf(e.getMessage()).contains("cannot limit locked memory")) {
      return false;
    }
    if (memoryHardLimit.getAndSet(false)) {
      LOG.warn(
          "libvirt at {} cannot give QEMU a memory hard limit (its daemon lacks CAP_SYS_RESOURCE):"
              + " its VMs run without one",
          uri());
    }
    return true;
  }

  private String domainXml(VMTemplate template, VirtType type) {
    String xml = template.toDomainXml(type);
    if (remote != null) {
      xml = remote.placeOnHost(xml);
    }
    return memoryHardLimit.get() ? xml : DomainXmlWriter.withoutMemoryHardLimit(xml);
  }

  @Override
  public boolean isLocal() {
    return remote == null;
  }

  @Override
  public dev.agentvm.core.HostCapacity capacity() {
    org.libvirt.NodeInfo info = session.call("read node info", () -> session.connect().nodeInfo());
    int active = session.call("count domains", () -> session.connect().numOfDomains());
    long total = info.memory;
    long available;
    try {
      Map<String, Long> kib = session.call("read memory statistics", this::nodeMemoryKiB);
      total = kib.getOrDefault("total", total);
      available = availableKiB(kib);
    } catch (ConnectionException e) {
      throw e;
    } catch (HypervisorException e) {
      // a driver without memory statistics: free memory only (page cache not counted)
      LOG.debug("{}: {}; using free memory", LogText.clean(uri()), LogText.clean(e.getMessage()));
      available = session.call("read free memory", () -> session.connect().getFreeMemory()) / 1024;
    }
    return new dev.agentvm.core.HostCapacity(
        Math.max(1, info.cpus), total * 1024, Math.max(0, available) * 1024, Math.max(0, active));
  }

  /** The node's memory statistics in KiB, by libvirt's field name (total, free, buffers, ...). */
  private Map<String, Long> nodeMemoryKiB() {
    LibvirtNative lib = LibvirtNative.get();
    com.sun.jna.Pointer c = session.nativeConnection();
    com.sun.jna.ptr.IntByReference n = new com.sun.jna.ptr.IntByReference(0);
    if (lib.virNodeGetMemoryStats(c, LibvirtNative.VIR_NODE_MEMORY_STATS_ALL_CELLS, null, n, 0)
        != 0) {
      throw new HypervisorException(
          "reading the memory statistics of " + uri() + " failed: " + lib.virGetLastErrorMessage(),
          null);
    }
    if (n.getValue() <= 0 || n.getValue() > 64) {
      throw new HypervisorException(
          uri() + " reports " + n.getValue() + " memory statistics (1 to 64 expected)", null);
    }
    try (com.sun.jna.Memory params =
        new com.sun.jna.Memory((long) n.getValue() * LibvirtNative.MEMORY_STATS_RECORD)) {
      params.clear();
      if (lib.virNodeGetMemoryStats(c, LibvirtNative.VIR_NODE_MEMORY_STATS_ALL_CELLS, params, n, 0)
          != 0) {
        throw new HypervisorException(
            "reading the memory statistics of "
                + uri()
                + " failed: "
                + lib.virGetLastErrorMessage(),
            null);
      }
      Map<String, Long> out = new java.util.HashMap<>();
      for (int i = 0; i < n.getValue(); i++) {
        long at = (long) i * LibvirtNative.MEMORY_STATS_RECORD;
        byte[] field = params.getByteArray(at, LibvirtNative.VIR_NODE_MEMORY_STATS_FIELD_LENGTH);
        int end = 0;
        while (end < field.length && field[end] != 0) {
          end++;
        }
        out.put(
            new String(field, 0, end, java.nio.charset.StandardCharsets.US_ASCII),
            params.getLong(at + LibvirtNative.VIR_NODE_MEMORY_STATS_FIELD_LENGTH));
      }
      return out;
    }
  }

  /** What the kernel can hand out: free memory, plus buffers and page cache it takes back. */
  static long availableKiB(Map<String, Long> kib) {
    long sum = 0;
    for (String field : List.of("free", "buffers", "cached")) {
      long v = kib.getOrDefault(field, 0L);
      if (v > 0) {
        sum += v;
      }
    }
    long total = kib.getOrDefault("total", Long.MAX_VALUE);
    return Math.min(sum, total < 0 ? Long.MAX_VALUE : total);
  }

  @Override
  public Optional<dev.agentvm.core.HostStorage> hostStorage() {
    return Optional.ofNullable(remote);
  }

  /** Images sent to the host so far by this connection (none for a local host). */
  @Override
  public long imageUploads() {
    return remote == null ? 0 : remote.uploads();
  }

  @Override
  public Optional<DomainHandle> lookup(String name) {
    try {
      return Optional.of(
          domain(
              session.call(
                  "look up domain " + name, () -> session.connect().domainLookupByName(name))));
    } catch (NoSuchVmException e) {
      return Optional.empty();
    }
  }

  private DomainHandle domain(Domain d) {
    return new LibvirtDomain(session, snapshots, remote, this::hardLimitRefused, d);
  }

  @Override
  public List<String> domainNames() {
    List<String> names = new ArrayList<>();
    for (Domain d : session.call("list domains", () -> session.connect().listAllDomains(0))) {
      names.add(session.call("read domain name", d::getName));
    }
    return names;
  }

  @Override
  public DomainHandle restore(Path file, VMTemplate identity) {
    String name =
        remote == null
            ? snapshots.restore(file, identity)
            : snapshots.restoreOnHost(file, identity, remote);
    return lookup(name)
        .orElseThrow(() -> new HypervisorException("restored domain " + name + " not found", null));
  }

  @Override
  public NetworkBackend networks() {
    return networks;
  }

  @Override
  public void addLifecycleListener(DomainLifecycleListener listener) {
    listeners.add(listener);
  }

  @Override
  public void removeLifecycleListener(DomainLifecycleListener listener) {
    listeners.remove(listener);
  }

  @Override
  public boolean isAlive() {
    return session.isAlive();
  }

  @Override
  public void close() {
    session.close();
  }
}
