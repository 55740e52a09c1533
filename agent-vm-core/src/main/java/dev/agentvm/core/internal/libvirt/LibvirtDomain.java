package dev.agentvm.core.internal.libvirt;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;
import dev.agentvm.core.NoSuchVmException;
import dev.agentvm.core.SnapshotException;
import dev.agentvm.core.agent.AgentTransport;
import dev.agentvm.core.spi.DomainDescription;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.DomainStatus;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;
import org.libvirt.Domain;
import org.libvirt.DomainInfo;
import org.libvirt.LibvirtException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One libvirt domain ({@link DomainHandle}): lifecycle and state here; snapshots and memory images
 * in {@link LibvirtSnapshots}, streams in {@link LibvirtStreamConnection}, its XML read by {@link
 * DomainXmlReader}. After a reconnection it looks its domain up again by UUID.
 */
final class LibvirtDomain implements DomainHandle {
  private static final Logger LOG = LoggerFactory.getLogger(LibvirtDomain.class);
  private static final int VIR_DOMAIN_XML_INACTIVE = 2;

  private final LibvirtSession session;
  private final LibvirtSnapshots snapshots;
  private final @Nullable HostVolumes remote;
  private final java.util.function.Predicate<RuntimeException> hardLimitRefused;
  private Domain d; // guarded by this; of connection generation gen
  private long gen;
  private final String name;
  private final String uuid;

  LibvirtDomain(
      LibvirtSession session,
      LibvirtSnapshots snapshots,
      @Nullable HostVolumes remote,
      java.util.function.Predicate<RuntimeException> hardLimitRefused,
      Domain d) {
    this.session = session;
    this.snapshots = snapshots;
    this.remote = remote;
    this.hardLimitRefused = hardLimitRefused;
    this.d = d;
    this.gen = session.generation();
    this.name = session.call("read domain name", d::getName);
    this.uuid = session.call("read domain uuid", d::getUUIDString);
  }

  /** The domain on the current connection (looked up again after a reconnection). */
  synchronized Domain dom() throws LibvirtException {
    long now = session.generation();
    if (gen != now) {
      d = session.connect().domainLookupByUUIDString(uuid);
      gen = now;
    }
    return d;
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public String uuid() {
    return uuid;
  }

  @Override
  public DomainStatus status() {
    DomainInfo.DomainState s;
    try {
      s = session.call("read state of " + name, () -> dom().getInfo().state);
    } catch (NoSuchVmException e) {
      return DomainStatus.of(DomainStatus.Kind.NOT_FOUND);
    }
    return switch (s) {
      case VIR_DOMAIN_RUNNING, VIR_DOMAIN_BLOCKED -> DomainStatus.of(DomainStatus.Kind.RUNNING);
      case VIR_DOMAIN_PAUSED, VIR_DOMAIN_PMSUSPENDED -> DomainStatus.of(DomainStatus.Kind.PAUSED);
      case VIR_DOMAIN_SHUTDOWN -> DomainStatus.of(DomainStatus.Kind.SHUTTING_DOWN);
      case VIR_DOMAIN_CRASHED -> DomainStatus.of(DomainStatus.Kind.CRASHED);
      case VIR_DOMAIN_SHUTOFF ->
          new DomainStatus(DomainStatus.Kind.SHUTOFF, shutoffBecauseCrashed());
      default -> DomainStatus.of(DomainStatus.Kind.OTHER);
    };
  }

  /** libvirt-java has no virDomainGetState; the reason tells a crash from a requested stop. */
  private boolean shutoffBecauseCrashed() {
    LibvirtNative lib = LibvirtNative.Holder.INSTANCE;
    if (lib == null) {
      LOG.debug(
          "cannot read shutoff reason: {}", String.valueOf(LibvirtNative.Holder.LOAD_FAILURE));
      return false;
    }
    Pointer p = lib.virDomainLookupByUUIDString(session.pointer(), uuid);
    if (p == null) {
      return false;
    }
    try {
      IntByReference state = new IntByReference();
      IntByReference reason = new IntByReference();
      if (lib.virDomainGetState(p, state, reason, 0) != 0) {
        return false;
      }
      return state.getValue() == LibvirtNative.VIR_DOMAIN_SHUTOFF
          && (reason.getValue() == LibvirtNative.VIR_DOMAIN_SHUTOFF_CRASHED
              || reason.getValue() == LibvirtNative.VIR_DOMAIN_SHUTOFF_FAILED);
    } finally {
      lib.virDomainFree(p);
    }
  }

  /** {@code VIR_DOMAIN_MEMORY_STAT_RSS}: the QEMU process's resident set, KiB. */
  private static final int MEMORY_STAT_RSS = 7;

  /** More than libvirt's stat tags (13 in 9.x), so none is cut off. */
  private static final int MEMORY_STATS = 16;

  @Override
  public dev.agentvm.core.VmStats stats() {
    return session.call(
        "read the statistics of " + name,
        () -> {
          Domain dm = dom();
          long cpuNanos = dm.getInfo().cpuTime;
          long rss = -1;
          for (org.libvirt.MemoryStatistic m : dm.memoryStats(MEMORY_STATS)) {
            if (m.getTag() == MEMORY_STAT_RSS) {
              rss = m.getValue();
            }
          }
          return new dev.agentvm.core.VmStats(
              java.time.Duration.ofNanos(Math.max(0, cpuNanos)), rss);
        });
  }

  @Override
  public void start() {
    try {
      session.call("start " + name, () -> dom().create());
    } catch (dev.agentvm.core.HypervisorException e) {
      if (!hardLimitRefused.test(e)) {
        throw e;
      }
      // defined again without the limit the host cannot apply (same name and UUID: an update)
      String xml =
          DomainXmlWriter.withoutMemoryHardLimit(
              session.call("read XML of " + name, () -> dom().getXMLDesc(VIR_DOMAIN_XML_INACTIVE)));
      session.call("redefine " + name, () -> session.connect().domainDefineXML(xml));
      session.call("start " + name, () -> dom().create());
    }
  }

  @Override
  public void requestShutdown() {
    session.run("shut down " + name, () -> dom().shutdown());
  }

  @Override
  public void destroy() {
    boolean transientDomain = false;
    if (remote != null) {
      try {
        transientDomain =
            session.call("read persistence of " + name, () -> dom().isPersistent()) == 0;
      } catch (NoSuchVmException e) {
        transientDomain = true; // a transient domain that ended by itself
      }
    }
    try {
      session.run("destroy " + name, () -> dom().destroy());
    } finally {
      if (transientDomain && remote != null) {
        remote.deleteVmFiles(name); // a transient domain is gone with its process
      }
    }
  }

  @Override
  public void undefine() {
    // the snapshots' data lives in the disks, which go with the VM; without this flag libvirt
    // refuses to undefine a domain that has snapshots
    session.run(
        "undefine " + name,
        () ->
            dom()
                .undefine(
                    Domain.UndefineFlags.SNAPSHOTS_METADATA | Domain.UndefineFlags.MANAGED_SAVE));
    if (remote != null) {
      remote.deleteVmFiles(name);
    }
  }

  @Override
  public void suspend() {
    session.run("suspend " + name, () -> dom().suspend());
  }

  @Override
  public void resume() {
    session.run("resume " + name, () -> dom().resume());
  }

  @Override
  public DomainDescription description() {
    return DomainXmlReader.describe(xml());
  }

  @Override
  public DomainDescription persistentDescription() {
    return DomainXmlReader.describe(
        session.call("read XML of " + name, () -> dom().getXMLDesc(VIR_DOMAIN_XML_INACTIVE)));
  }

  @Override
  public String xml() {
    return session.call("read XML of " + name, () -> dom().getXMLDesc(0));
  }

  @Override
  public void createSnapshot(String snapshot, String description) {
    snapshots.create(this, snapshot, description);
  }

  @Override
  public List<String> snapshotNames() {
    return snapshots.names(this);
  }

  @Override
  public void revertToSnapshot(String snapshot) {
    snapshots.revert(this, snapshot);
  }

  @Override
  public void deleteSnapshot(String snapshot) {
    snapshots.delete(this, snapshot);
  }

  @Override
  public void saveMemory(Path file) {
    if (remote != null && remote.poolName(file.toString()).isEmpty()) {
      throw new SnapshotException(
          "VM "
              + name
              + " runs on libvirt at "
              + session.uri()
              + ": its memory image goes into the host's pool (LibvirtConnection.hostStorage()"
              + ".path(name)), not to "
              + file);
    }
    if (remote != null) {
      String pool = remote.poolName(file.toString()).orElseThrow();
      if (HostVolumes.writableInPlace(pool) || pool.startsWith(HostVolumes.IMAGE_PREFIX)) {
        // a memory image named like a VM's disk could be attached to a guest, writable; a staged
        // image is every VM's
        throw new SnapshotException(
            "VM "
                + name
                + ": a memory image may not be named "
                + pool
                + " (names ending in "
                + HostVolumes.QCOW2_SUFFIX
                + " are disks, "
                + HostVolumes.IMAGE_PREFIX
                + "* staged images)");
      }
    }
    snapshots.saveMemory(this, file);
  }

  @Override
  public Optional<byte[]> consoleTail(int maxBytes) {
    Optional<String> log = DomainXmlReader.consoleLogFile(xml());
    if (log.isEmpty()) {
      return Optional.empty();
    }
    if (remote != null) {
      return remote.tail(log.get(), maxBytes);
    }
    return localTail(Path.of(log.get()), maxBytes);
  }

  @Override
  public AgentTransport.Connection openChannel(String channelName) throws IOException {
    return LibvirtStreamConnection.open(
        session.uri(),
        uuid,
        "channel " + channelName,
        (lib, dom, st) -> lib.virDomainOpenChannel(dom, channelName, st, 0));
  }

  @Override
  public AgentTransport.Connection openConsole() throws IOException {
    return LibvirtStreamConnection.open(
        session.uri(),
        uuid,
        "console of " + name,
        (lib, dom, st) ->
            lib.virDomainOpenConsole(dom, null, st, LibvirtNative.VIR_DOMAIN_CONSOLE_SAFE));
  }

  private static Optional<byte[]> localTail(Path file, int maxBytes) {
    // not through a link: the directory may be writable by QEMU's user
    try (java.nio.channels.SeekableByteChannel ch =
        java.nio.file.Files.newByteChannel(
            file,
            java.util.Set.of(
                java.nio.file.StandardOpenOption.READ, java.nio.file.LinkOption.NOFOLLOW_LINKS))) {
      long size = ch.size();
      long from = Math.max(0, size - maxBytes);
      ch.position(from);
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate((int) (size - from));
      while (buf.hasRemaining() && ch.read(buf) > 0) {
        // reads until full or the end
      }
      return Optional.of(java.util.Arrays.copyOf(buf.array(), buf.position()));
    } catch (java.nio.file.NoSuchFileException e) {
      return Optional.empty();
    } catch (IOException e) {
      LOG.debug("cannot read console log {}: {}", file, e.getMessage());
      return Optional.empty();
    }
  }
}
