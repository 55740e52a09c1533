package dev.agentvm.core;

import dev.agentvm.core.internal.OwnerWatchdog;
import dev.agentvm.core.internal.libvirt.LibvirtBackend;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.HypervisorBackend;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.internal.Setting;
import dev.agentvm.internal.ShutdownHooks;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A connection to a hypervisor through libvirt, and the factory of {@link VM}s. Thread-safe;
 * closing is idempotent.
 *
 * <pre>{@code
 * try (LibvirtConnection conn = LibvirtConnection.open()) {       // qemu:///system
 *   VM vm = conn.define(template);
 * }
 * }</pre>
 *
 * <p>Opening a connection reaps orphans first (see {@link Reaper}): VMs whose owning process died
 * without cleaning up. Set {@code AGENTVM_REAP=off} to skip that.
 *
 * <p>The URI defaults to {@code $AGENTVM_LIBVIRT_URI}, else {@code qemu:///system}. Remote URIs
 * such as {@code qemu+ssh://host/system} work for domain management; the agent channel needs the
 * VM's socket on this machine.
 */
public final class LibvirtConnection implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(LibvirtConnection.class);
  public static final String DEFAULT_URI = "qemu:///system";

  /** How long {@link #open(String)} retries a daemon that is not answering yet. */
  public static final Duration DEFAULT_CONNECT_RETRY = Duration.ofSeconds(10);

  /** Identifies this process as the owner of what it creates: pid and process start time. */
  private final HypervisorBackend backend;

  private final VirtTypeSelector virtTypes;
  private final AtomicBoolean closed = new AtomicBoolean();
  private final java.util.Set<VM> vms = java.util.concurrent.ConcurrentHashMap.newKeySet();
  private final ShutdownHooks.Registration atExit;

  private LibvirtConnection(HypervisorBackend backend) {
    this.backend = backend;
    this.virtTypes = new VirtTypeSelector(backend);
    this.atExit = ShutdownHooks.register("libvirt connection " + backend.uri(), this::closeAtExit);
  }

  /** VMs made through this connection and not closed yet. */
  void track(VM vm) {
    vms.add(vm);
  }

  void forget(VM vm) {
    vms.remove(vm);
  }

  /** Memory of the VMs made through this connection and not closed yet (placement's commitment). */
  long heldMemoryBytes() {
    long sum = 0;
    for (VM vm : vms) {
      sum += (long) vm.template().resources().memoryMiB() << 20;
    }
    return sum;
  }

  /** How many VMs made through this connection are not closed yet. */
  int heldVms() {
    return vms.size();
  }

  /** At JVM exit: every open VM stopped (gracefully first), in parallel, then the connection. */
  private void closeAtExit() {
    List<Thread> stoppers = new java.util.ArrayList<>();
    for (VM vm : List.copyOf(vms)) {
      Thread t =
          new Thread(
              () -> {
                try {
                  vm.close();
                } catch (RuntimeException e) {
                  LOG.warn("closing {} at exit: {}", vm.name(), e.getMessage());
                }
              },
              "agentvm-shutdown-" + vm.name());
      t.start();
      stoppers.add(t);
    }
    for (Thread t : stoppers) {
      try {
        t.join(Duration.ofSeconds(30).toMillis());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    close();
  }

  /**
   * This process's owner id, {@code pid@start-instant}: recorded on every resource agent-vm
   * creates, so that the {@link Reaper} can tell when its owner is gone.
   */
  public static String processOwner() {
    return ProcessOwners.CURRENT;
  }

  /** Opens the default URI. */
  public static LibvirtConnection open() {
    return open(defaultUri());
  }

  /**
   * Opens a URI, retrying for {@link #DEFAULT_CONNECT_RETRY} while a local daemon is not answering.
   *
   * @throws ConnectionException naming the URI and libvirt's message
   */
  public static LibvirtConnection open(String uri) {
    return open(uri, DEFAULT_CONNECT_RETRY);
  }

  /**
   * Opens a URI; a local daemon that is not answering (one that is starting) is tried again until
   * {@code retryFor} has passed. A remote host is tried once: one that does not answer, or answers
   * and refuses, fails at once (a {@link HostSet} retries its hosts with backoff).
   *
   * @throws ConnectionException naming the URI and libvirt's message
   */
  public static LibvirtConnection open(String uri, Duration retryFor) {
    Objects.requireNonNull(uri, "uri");
    HypervisorBackend backend = LibvirtBackend.open(uri, retryFor);
    LibvirtConnection c;
    try {
      c = new LibvirtConnection(backend);
    } catch (RuntimeException | Error e) {
      backend.close();
      throw e;
    }
    try {
      LOG.debug("connected to {}", uri);
      reportConfinement(c.backend);
      OwnerWatchdog.ensureStarted(uri);
      if (!Setting.REAP.isOff()) {
        // VMs left by a JVM that died without cleaning up; cheap when there are none
        Reaper.reapOrphans(c, VM.DEFAULT_SHUTDOWN_GRACE);
      }
      return c;
    } catch (RuntimeException | Error e) {
      // a host that answered the connect and failed right after: the caller may try again and
      // again (a host set does), so the connection must not be left behind each time
      try {
        c.close();
      } catch (RuntimeException closing) {
        e.addSuppressed(closing);
      }
      throw e;
    }
  }

  private static final java.util.Set<String> CONFINEMENT_REPORTED =
      java.util.concurrent.ConcurrentHashMap.newKeySet();

  /** Logs how QEMU is confined, once per URI and JVM: INFO when all is there, else a WARN each. */
  private static void reportConfinement(HypervisorBackend backend) {
    QemuConfinement q;
    try {
      q = backend.confinement();
    } catch (RuntimeException e) {
      LOG.warn(
          "cannot tell how {} confines QEMU: {}",
          LogText.clean(backend.uri()),
          LogText.clean(e.getMessage()));
      return;
    }
    if (!CONFINEMENT_REPORTED.add(q.uri())) {
      return;
    }
    String uri = LogText.clean(q.uri()); // libvirt's words: cleaned like any text from outside
    LOG.info(
        "{}: QEMU confined by {}, as {}, seccomp sandbox {}",
        uri,
        LogText.clean(
            q.securityDrivers().isEmpty() ? "no security driver" : q.securityDrivers().toString()),
        LogText.clean(q.qemuUser().isEmpty() ? "the user libvirt chooses" : q.qemuUser()),
        q.seccompSandbox().map(on -> on ? "on" : "OFF").orElse("unknown here"));
    for (String w : q.warnings()) {
      LOG.warn("{}: {}", uri, LogText.clean(w));
    }
  }

  /** How the host confines the QEMU processes of this connection (read from libvirt now). */
  public QemuConfinement confinement() {
    return backend.confinement();
  }

  /** Wraps another backend (e.g. an in-memory fake for unit tests of pool logic). */
  public static LibvirtConnection using(HypervisorBackend backend) {
    return new LibvirtConnection(Objects.requireNonNull(backend, "backend"));
  }

  public static String defaultUri() {
    return Setting.LIBVIRT_URI.valueOr(DEFAULT_URI);
  }

  public String uri() {
    return backend.uri();
  }

  /**
   * The files agent-vm keeps on this connection's host when it is another machine (its overlays and
   * memory images go there); empty for a local host.
   */
  public java.util.Optional<HostStorage> hostStorage() {
    return backend.hostStorage();
  }

  /**
   * Whether VMs here can use the local {@code files} without sending them first: always on a host
   * that shares this machine's files, else when this client knows them staged there ({@link
   * HostStorage#knowsStaged}). Never calls the host.
   */
  public boolean hasFiles(java.util.Collection<java.nio.file.Path> files) {
    java.util.Optional<HostStorage> storage = hostStorage();
    return storage.isEmpty() || files.stream().allMatch(storage.get()::knowsStaged);
  }

  /** The local files a VM of {@code template} needs on its host: boot images, read-only disks. */
  public static java.util.List<java.nio.file.Path> filesOf(VMTemplate template) {
    java.util.List<java.nio.file.Path> files = new java.util.ArrayList<>();
    files.add(template.boot().kernel());
    files.add(template.boot().initrd());
    for (DiskAttachment d : template.disks()) {
      if (d.readOnly()) {
        files.add(d.file());
      }
    }
    return files;
  }

  public HypervisorBackend backend() {
    return backend;
  }

  public boolean isConnected() {
    return !closed.get() && backend.isAlive();
  }

  /**
   * Resolves a configured virt type for VMs booting {@code boot} on this host; see {@link
   * VirtTypeSelector}.
   */
  public VirtType resolveVirtType(VirtType configured, BootSource boot) {
    return virtTypes.select(configured, boot);
  }

  /**
   * Defines (but does not start) a persistent VM from a template. Creates its runtime directory and
   * records this process as its owner in the domain metadata.
   *
   * @throws HypervisorException if libvirt rejects the definition
   */
  public VM define(VMTemplate template) {
    VirtType type = resolveVirtType(template.virtType(), template.boot());
    VMTemplate t = template.newBuilder().owner(ProcessOwners.CURRENT).build();
    createRunDir(t);
    DomainHandle d;
    try {
      d = backend.define(t, type);
    } catch (RuntimeException e) {
      deleteRunDir(t, e);
      throw e;
    }
    LOG.debug(
        "defined {} ({}, {} vCPU, {} MiB)",
        t.name(),
        type,
        t.resources().vcpus(),
        t.resources().memoryMiB());
    return new VM(this, d, t, type);
  }

  /**
   * Starts a VM from a memory image made by {@link VM#saveMemory}, under the identity of {@code
   * template}: its name, UUID, generation id, runtime directory, and the files of its disks and
   * shares (matched by target device and tag). The virtual hardware is the saved VM's. The VM
   * resumes where the saved one stopped; connect to its agent with {@link VM#awaitAgent}. Restores
   * of one image take turns: on a local connection through a lock file beside it ({@code
   * <image>.lock}), which stays (delete it with the image).
   *
   * @throws SnapshotException if the image is missing or the hypervisor refused to restore it
   */
  public VM restore(Path memoryImage, VMTemplate template) {
    if (backend.isLocal() && !Files.isRegularFile(memoryImage)) {
      throw new SnapshotException("memory image " + memoryImage + " does not exist");
    }
    VirtType type = resolveVirtType(template.virtType(), template.boot());
    VMTemplate t = template.newBuilder().owner(ProcessOwners.CURRENT).build();
    createRunDir(t);
    DomainHandle d;
    try {
      d = backend.restore(memoryImage, t);
    } catch (RuntimeException e) {
      deleteRunDir(t, e);
      throw new SnapshotException(
          "restoring " + t.name() + " from " + memoryImage + " failed: " + e.getMessage(), e);
    }
    LOG.debug("restored {} from {}", t.name(), memoryImage);
    VM vm = new VM(this, d, t, type);
    vm.markStarted();
    return vm;
  }

  /**
   * A VM object for an existing domain that agent-vm defined (for example one whose owner chose to
   * keep it). Closing it stops and removes it.
   *
   * @throws NoSuchVmException if there is no such domain
   * @throws IllegalArgumentException if the domain was not defined by agent-vm
   */
  public VM attach(String name) {
    DomainHandle d =
        backend.lookup(name).orElseThrow(() -> new NoSuchVmException("no VM named " + name, null));
    VMTemplate t =
        d.description()
            .templateIfAny()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "domain " + name + " was not defined by agent-vm"));
    return VM.adopt(this, d, t);
  }

  private static void createRunDir(VMTemplate t) {
    try {
      Files.createDirectories(t.runDir());
      // names its owner: a directory whose domain never came (a process that died between the two)
      // is still known as the dead process's and reaped (Reaper.reapRunDirs)
      Optional<String> owner = t.owner();
      if (owner.isPresent()) {
        Files.writeString(t.runDir().resolve(Reaper.OWNER_FILE), owner.get());
      }
    } catch (IOException e) {
      throw new AgentVmException(
          "cannot create runtime directory " + t.runDir() + ": " + e.getMessage(), e);
    }
  }

  private static void deleteRunDir(VMTemplate t, RuntimeException failure) {
    try {
      VM.deleteTree(t.runDir());
    } catch (IOException io) {
      failure.addSuppressed(io);
    }
  }

  /** The host's CPUs, memory and active domains now, as its libvirt daemon reports them. */
  public HostCapacity capacity() {
    return backend.capacity();
  }

  /** Names of all domains on this connection, running or not. */
  public List<String> domainNames() {
    return backend.domainNames();
  }

  /**
   * Closes the connection. VMs still open are not stopped (close them first); at JVM exit, the
   * shutdown hook stops them (see {@link ShutdownHooks}).
   */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      atExit.close();
      backend.close();
    }
  }
}
