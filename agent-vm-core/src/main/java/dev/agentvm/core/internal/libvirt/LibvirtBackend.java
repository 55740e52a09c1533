package dev.agentvm.core.internal.libvirt;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;
import dev.agentvm.core.ConnectionException;
import dev.agentvm.core.HypervisorException;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.DomainLifecycleListener;
import dev.agentvm.core.spi.DomainStatus;
import dev.agentvm.core.spi.HypervisorBackend;
import dev.agentvm.internal.FileLocks;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;
import org.libvirt.Connect;
import org.libvirt.Domain;
import org.libvirt.DomainInfo;
import org.libvirt.DomainSnapshot;
import org.libvirt.Error;
import org.libvirt.LibvirtException;
import org.libvirt.event.LifecycleListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The libvirt {@link HypervisorBackend}. All {@code org.libvirt} use lives in this package. */
public final class LibvirtBackend implements HypervisorBackend {
  private static final Logger LOG = LoggerFactory.getLogger(LibvirtBackend.class);

  private static final int VIR_DOMAIN_XML_INACTIVE = 2;
  private static final int VIR_NETWORK_XML_INACTIVE = 1;

  private final String uri;

  /** Replaced when libvirtd restarted under us (see {@link #recover}). */
  private volatile NativeConnect conn;

  /** Counts reconnections; domain handles look their domain up again when it moved on. */
  private final java.util.concurrent.atomic.AtomicLong generation =
      new java.util.concurrent.atomic.AtomicLong();

  private final Object reconnectLock = new Object();
  private final AtomicBoolean closed = new AtomicBoolean();
  private final List<DomainLifecycleListener> listeners = new CopyOnWriteArrayList<>();
  private final LifecycleListener lifecycle;

  /** {@link Connect} with access to its native pointer for {@link LibvirtNative} calls. */
  private static final class NativeConnect extends Connect {
    NativeConnect(String uri) throws LibvirtException {
      super(uri);
    }

    Pointer pointer() {
      return vcp.getPointer();
    }
  }

  private LibvirtBackend(String uri, NativeConnect conn) {
    this.uri = uri;
    this.conn = conn;
    this.lifecycle =
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
        };
    try {
      conn.addLifecycleListener(lifecycle);
    } catch (LibvirtException e) {
      LOG.warn("no lifecycle events from {}: {}; falling back to polling", uri, e.getMessage());
    }
  }

  /**
   * Opens a connection, retrying transient failures (a daemon that is starting) until {@code
   * retryFor} has passed.
   *
   * @throws ConnectionException naming the URI and libvirt's message
   */
  public static LibvirtBackend open(String uri, Duration retryFor) {
    try {
      EventLoop.ensureStarted();
    } catch (LibvirtException e) {
      throw new ConnectionException(uri, "cannot start libvirt's event loop: " + e.getMessage(), e);
    } catch (LinkageError e) {
      throw new ConnectionException(uri, "cannot load libvirt (is libvirt0 installed?): " + e, e);
    }
    long deadline = System.nanoTime() + retryFor.toNanos();
    long backoff = 100;
    int attempt = 0;
    while (true) {
      attempt++;
      try {
        LOG.debug("connecting to {} (attempt {})", uri, attempt);
        return new LibvirtBackend(uri, new NativeConnect(uri));
      } catch (LibvirtException e) {
        if (!LibvirtErrors.isTransient(e) || System.nanoTime() + backoff * 1_000_000 > deadline) {
          Error err = e.getError();
          throw new ConnectionException(
              uri,
              (err != null && err.getMessage() != null ? err.getMessage().trim() : e.getMessage())
                  + (attempt > 1 ? " (after " + attempt + " attempts)" : "")
                  + ". Is libvirtd running and may this user use "
                  + uri
                  + "? (scripts/setup-host.sh)",
              e);
        }
        LOG.debug(
            "connect to {} failed transiently: {}; retrying in {} ms",
            uri,
            e.getMessage(),
            backoff);
        sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  @Override
  public String uri() {
    return uri;
  }

  @Override
  public Set<String> advertisedDomainTypes() {
    String caps = call("read capabilities", conn::getCapabilities);
    Set<String> types = new LinkedHashSet<>();
    // <guest> ... <arch name='x86_64'> ... <domain type='kvm'/> ...
    Matcher guest = Pattern.compile("<guest>.*?</guest>", Pattern.DOTALL).matcher(caps);
    while (guest.find()) {
      String g = guest.group();
      if (g.contains("name='x86_64'") || g.contains("name=\"x86_64\"")) {
        Matcher t = Pattern.compile("<domain type=['\"](\\w+)['\"]").matcher(g);
        while (t.find()) {
          types.add(t.group(1));
        }
      }
    }
    return types;
  }

  @Override
  public String versionFingerprint() {
    long lib = call("read library version", conn::getLibVersion);
    long hv = call("read hypervisor version", conn::getVersion);
    String host = call("read host name", conn::getHostName);
    return "host="
        + host
        + " kernel="
        + System.getProperty("os.version")
        + " libvirt="
        + lib
        + " hypervisor="
        + hv;
  }

  @Override
  public DomainHandle define(String xml) {
    return new LibvirtDomain(call("define domain", () -> conn.domainDefineXML(xml)));
  }

  @Override
  public DomainHandle createTransient(String xml) {
    return new LibvirtDomain(call("create domain", () -> conn.domainCreateXML(xml, 0)));
  }

  @Override
  public Optional<DomainHandle> lookup(String name) {
    try {
      return Optional.of(
          new LibvirtDomain(call("look up domain " + name, () -> conn.domainLookupByName(name))));
    } catch (dev.agentvm.core.NoSuchVmException e) {
      return Optional.empty();
    }
  }

  /**
   * {@inheritDoc}
   *
   * <p>An edited XML is written into the image's header (see {@link SaveImageHeader}) rather than
   * passed to libvirt, which would refuse another UUID. A file lock alone would not do: the JVM
   * holds file locks for the whole process, so threads need their own lock too.
   */
  @Override
  public DomainHandle restore(
      java.nio.file.Path file, java.util.function.@Nullable UnaryOperator<String> edit) {
    LibvirtNative lib = LibvirtNative.get();
    isAlive(); // the native calls below use the current connection: make sure it is one
    java.nio.file.Path key = file.toAbsolutePath().normalize();
    java.nio.file.Path lockFile = key.resolveSibling(key.getFileName() + ".lock");
    String xml;
    try {
      xml =
          FileLocks.withLock(
              lockFile,
              () -> {
                String saved = savedImageXml(key);
                @Nullable String edited = edit == null ? null : edit.apply(saved);
                if (edited != null && !edited.equals(saved)) {
                  SaveImageHeader.rewriteXml(key, edited);
                }
                if (lib.virDomainRestoreFlags(conn.pointer(), key.toString(), null, 0) != 0) {
                  throw new HypervisorException(
                      "restore from " + key + " failed: " + lib.virGetLastErrorMessage(), null);
                }
                return edited == null ? saved : edited;
              });
    } catch (java.io.IOException e) {
      throw new HypervisorException("locking " + lockFile + ": " + e, e);
    }
    String name = xml.replaceAll("(?s).*?<name>([^<]*)</name>.*", "$1");
    return lookup(name)
        .orElseThrow(() -> new HypervisorException("restored domain " + name + " not found", null));
  }

  @Override
  public String savedImageXml(java.nio.file.Path file) {
    LibvirtNative lib = LibvirtNative.get();
    isAlive();
    Pointer p = lib.virDomainSaveImageGetXMLDesc(conn.pointer(), file.toString(), 0);
    if (p == null) {
      throw new HypervisorException(
          "read XML of saved image " + file + ": " + lib.virGetLastErrorMessage(), null);
    }
    try {
      return p.getString(0, "UTF-8");
    } finally {
      com.sun.jna.Native.free(Pointer.nativeValue(p));
    }
  }

  @Override
  public List<String> networkNames() {
    List<String> names = new ArrayList<>(List.of(call("list networks", conn::listNetworks)));
    names.addAll(List.of(call("list networks", conn::listDefinedNetworks)));
    return names;
  }

  @Override
  public Optional<String> networkXml(String name) {
    try {
      org.libvirt.Network n = conn.networkLookupByName(name);
      try {
        return Optional.of(n.getXMLDesc(VIR_NETWORK_XML_INACTIVE));
      } finally {
        n.free();
      }
    } catch (LibvirtException e) {
      if (e.getError() != null && e.getError().getCode() == Error.ErrorNumber.VIR_ERR_NO_NETWORK) {
        return Optional.empty();
      }
      throw LibvirtErrors.translate(uri, "read network " + name, e);
    }
  }

  @Override
  public void defineNetwork(String xml) {
    run("define network", () -> conn.networkDefineXML(xml).free());
  }

  private <T> T onNetwork(String name, String what, NetworkCall<T> c) {
    return call(
        what + " network " + name,
        () -> {
          org.libvirt.Network n = conn.networkLookupByName(name);
          try {
            return c.call(n);
          } finally {
            n.free();
          }
        });
  }

  @FunctionalInterface
  private interface NetworkCall<T> {
    T call(org.libvirt.Network n) throws LibvirtException;
  }

  private void onNetworkDo(String name, String what, NetworkAction a) {
    onNetwork(
        name,
        what,
        n -> {
          a.run(n);
          return Boolean.TRUE;
        });
  }

  @FunctionalInterface
  private interface NetworkAction {
    void run(org.libvirt.Network n) throws LibvirtException;
  }

  @Override
  public boolean isNetworkActive(String name) {
    return onNetwork(name, "read state of", n -> n.isActive() == 1);
  }

  @Override
  public void startNetwork(String name) {
    onNetworkDo(name, "start", n -> n.create());
  }

  @Override
  public void stopNetwork(String name) {
    onNetworkDo(name, "stop", n -> n.destroy());
  }

  @Override
  public void undefineNetwork(String name) {
    onNetworkDo(name, "undefine", n -> n.undefine());
  }

  @Override
  public void updateDhcpHost(String network, boolean add, String hostXml) {
    LibvirtNative lib = LibvirtNative.get();
    isAlive();
    int flags =
        LibvirtNative.VIR_NETWORK_UPDATE_AFFECT_CONFIG
            | (isNetworkActive(network) ? LibvirtNative.VIR_NETWORK_UPDATE_AFFECT_LIVE : 0);
    Pointer n = lib.virNetworkLookupByName(conn.pointer(), network);
    if (n == null) {
      throw new HypervisorException(
          "network " + network + ": " + lib.virGetLastErrorMessage(), null);
    }
    try {
      if (lib.virNetworkUpdate(
              n,
              add
                  ? LibvirtNative.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
                  : LibvirtNative.VIR_NETWORK_UPDATE_COMMAND_DELETE,
              LibvirtNative.VIR_NETWORK_SECTION_IP_DHCP_HOST,
              -1,
              hostXml,
              flags)
          != 0) {
        throw new HypervisorException(
            (add ? "adding " : "removing ")
                + hostXml
                + (add ? " to " : " from ")
                + network
                + " failed: "
                + lib.virGetLastErrorMessage(),
            null);
      }
    } finally {
      lib.virNetworkFree(n);
    }
  }

  @Override
  public List<String> filterNames() {
    return List.of(call("list nwfilters", conn::listNetworkFilters));
  }

  @Override
  public Optional<String> filterXml(String name) {
    try {
      org.libvirt.NetworkFilter f = conn.networkFilterLookupByName(name);
      try {
        return Optional.of(f.getXMLDesc());
      } finally {
        f.free();
      }
    } catch (LibvirtException e) {
      if (e.getError() != null && e.getError().getCode() == Error.ErrorNumber.VIR_ERR_NO_NWFILTER) {
        return Optional.empty();
      }
      throw LibvirtErrors.translate(uri, "read nwfilter " + name, e);
    }
  }

  @Override
  public void defineFilter(String xml) {
    run("define nwfilter", () -> conn.networkFilterDefineXML(xml).free());
  }

  @Override
  public void undefineFilter(String name) {
    run(
        "undefine nwfilter " + name,
        () -> {
          org.libvirt.NetworkFilter f = conn.networkFilterLookupByName(name);
          try {
            f.undefine();
          } finally {
            f.free();
          }
        });
  }

  @Override
  public List<String> domainNames() {
    List<String> names = new ArrayList<>();
    for (Domain d : call("list domains", () -> conn.listAllDomains(0))) {
      names.add(call("read domain name", d::getName));
    }
    return names;
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
    if (closed.get()) {
      return false;
    }
    try {
      if (conn.isAlive()) {
        return true;
      }
    } catch (LibvirtException e) {
      // fall through: try to get a new connection
    }
    try {
      return recover(null) && conn.isAlive();
    } catch (LibvirtException | RuntimeException e) {
      return false;
    }
  }

  /**
   * If the connection died (libvirtd restarted or was killed), opens a new one, registers the
   * lifecycle listener on it again, and returns true; returns false if the connection is fine.
   * Running domains are not affected by a libvirtd restart: QEMU keeps running, and the new
   * libvirtd re-attaches to it; domain handles look their domain up again on the new connection.
   *
   * @throws ConnectionException if libvirtd did not come back within a minute
   */
  private boolean recover(@Nullable LibvirtException cause) {
    if (closed.get()) {
      return false;
    }
    NativeConnect dead = conn;
    try {
      if (dead.isAlive()) {
        return false;
      }
    } catch (LibvirtException e) {
      // not alive
    }
    synchronized (reconnectLock) {
      @SuppressWarnings("ReferenceEquality") // identity is the point: is it still the same handle?
      boolean replaced = conn != dead;
      if (replaced) {
        return true; // another thread reconnected meanwhile
      }
      LOG.warn(
          "connection to {} lost{}; reconnecting",
          uri,
          cause == null ? "" : " (" + cause.getMessage() + ")");
      try {
        dead.close();
      } catch (LibvirtException | RuntimeException e) {
        LOG.debug("closing the dead connection: {}", e.getMessage());
      }
      long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
      long backoff = 100;
      while (true) {
        try {
          NativeConnect fresh = new NativeConnect(uri);
          try {
            fresh.addLifecycleListener(lifecycle);
          } catch (LibvirtException e) {
            LOG.warn("no lifecycle events after reconnecting: {}", e.getMessage());
          }
          conn = fresh;
          generation.incrementAndGet();
          LOG.info("reconnected to {}", uri);
          return true;
        } catch (LibvirtException e) {
          if (System.nanoTime() > deadline) {
            throw new ConnectionException(
                uri, "libvirtd did not come back within a minute: " + e.getMessage(), e);
          }
          sleep(backoff);
          backoff = Math.min(backoff * 2, 2000);
        }
      }
    }
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    try {
      conn.removeLifecycleListener(lifecycle);
    } catch (LibvirtException | RuntimeException e) {
      LOG.debug("removing lifecycle listener: {}", e.getMessage());
    }
    try {
      conn.close();
    } catch (LibvirtException e) {
      LOG.warn("closing libvirt connection {}: {}", uri, e.getMessage());
    }
  }

  private <T> T call(String operation, LibvirtCall<T> c) {
    if (closed.get()) {
      throw new ConnectionException(uri, operation + ": connection is closed", null);
    }
    try {
      return c.call();
    } catch (LibvirtException e) {
      if (recover(e)) {
        try {
          return c.call();
        } catch (LibvirtException again) {
          throw LibvirtErrors.translate(uri, operation, again);
        }
      }
      throw LibvirtErrors.translate(uri, operation, e);
    }
  }

  @FunctionalInterface
  private interface LibvirtCall<T> {
    T call() throws LibvirtException;
  }

  /** {@link #call} for an operation that has no result. */
  private void run(String operation, LibvirtAction a) {
    call(
        operation,
        () -> {
          a.run();
          return Boolean.TRUE;
        });
  }

  @FunctionalInterface
  private interface LibvirtAction {
    void run() throws LibvirtException;
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new HypervisorException("interrupted", e);
    }
  }

  private final class LibvirtDomain implements DomainHandle {
    private Domain d; // guarded by this; of connection generation gen
    private long gen;
    private final String name;
    private final String uuid;

    LibvirtDomain(Domain d) {
      this.d = d;
      this.gen = generation.get();
      this.name = call("read domain name", d::getName);
      this.uuid = call("read domain uuid", d::getUUIDString);
    }

    /** The domain on the current connection (looked up again after a reconnection). */
    private synchronized Domain dom() throws LibvirtException {
      long now = generation.get();
      if (gen != now) {
        d = conn.domainLookupByUUIDString(uuid);
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
        s = call("read state of " + name, () -> dom().getInfo().state);
      } catch (dev.agentvm.core.NoSuchVmException e) {
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
      Pointer p = lib.virDomainLookupByUUIDString(conn.pointer(), uuid);
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

    @Override
    public void start() {
      call("start " + name, () -> dom().create());
    }

    @Override
    public void requestShutdown() {
      run("shut down " + name, () -> dom().shutdown());
    }

    @Override
    public void destroy() {
      run("destroy " + name, () -> dom().destroy());
    }

    @Override
    public void undefine() {
      run(
          "undefine " + name,
          () -> {
            // the snapshots' data lives in the disks, which go with the VM; without this flag
            // libvirt refuses to undefine a domain that has snapshots
            dom()
                .undefine(
                    Domain.UndefineFlags.SNAPSHOTS_METADATA | Domain.UndefineFlags.MANAGED_SAVE);
          });
    }

    @Override
    public void createSnapshot(String snapshotXml) {
      run("snapshot " + name, () -> dom().snapshotCreateXML(snapshotXml).free());
    }

    @Override
    public List<String> snapshotNames() {
      return List.of(call("list snapshots of " + name, () -> dom().snapshotListNames()));
    }

    @Override
    public void revertToSnapshot(String snapshot) {
      run(
          "revert " + name + " to snapshot " + snapshot,
          () -> {
            DomainSnapshot s = dom().snapshotLookupByName(snapshot);
            try {
              dom().revertToSnapshot(s);
            } finally {
              s.free();
            }
          });
    }

    @Override
    public void deleteSnapshot(String snapshot) {
      run(
          "delete snapshot " + snapshot + " of " + name,
          () -> {
            DomainSnapshot s = dom().snapshotLookupByName(snapshot);
            try {
              s.delete(0);
            } finally {
              s.free();
            }
          });
    }

    @Override
    public void suspend() {
      run("suspend " + name, () -> dom().suspend());
    }

    @Override
    public void resume() {
      run("resume " + name, () -> dom().resume());
    }

    @Override
    public String xml() {
      return call("read XML of " + name, () -> dom().getXMLDesc(0));
    }

    @Override
    public String inactiveXml() {
      return call("read XML of " + name, () -> dom().getXMLDesc(VIR_DOMAIN_XML_INACTIVE));
    }

    @Override
    public void saveMemory(java.nio.file.Path file) {
      LibvirtNative lib = LibvirtNative.get();
      isAlive();
      Pointer p = lib.virDomainLookupByUUIDString(conn.pointer(), uuid);
      if (p == null) {
        throw new dev.agentvm.core.NoSuchVmException(
            "save " + name + ": " + lib.virGetLastErrorMessage(), null);
      }
      try {
        if (lib.virDomainSaveFlags(p, file.toString(), null, 0) != 0) {
          throw new HypervisorException(
              "save " + name + " to " + file + " failed: " + lib.virGetLastErrorMessage(), null);
        }
      } finally {
        lib.virDomainFree(p);
      }
    }

    @Override
    public dev.agentvm.core.agent.AgentTransport.Connection openChannel(String channelName)
        throws java.io.IOException {
      return LibvirtStreamConnection.open(
          uri,
          uuid,
          "channel " + channelName,
          (lib, dom, st) -> lib.virDomainOpenChannel(dom, channelName, st, 0));
    }

    @Override
    public dev.agentvm.core.agent.AgentTransport.Connection openConsole()
        throws java.io.IOException {
      return LibvirtStreamConnection.open(
          uri,
          uuid,
          "console of " + name,
          (lib, dom, st) ->
              lib.virDomainOpenConsole(dom, null, st, LibvirtNative.VIR_DOMAIN_CONSOLE_SAFE));
    }
  }
}
