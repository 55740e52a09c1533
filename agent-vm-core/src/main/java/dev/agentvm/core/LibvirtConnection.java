package dev.agentvm.core;

import dev.agentvm.core.internal.libvirt.LibvirtBackend;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.HypervisorBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
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
  static final String OWNER =
      ProcessHandle.current().pid()
          + "@"
          + ProcessHandle.current().info().startInstant().map(Instant::toString).orElse("unknown");

  private final HypervisorBackend backend;
  private final VirtTypeSelector virtTypes;
  private final AtomicBoolean closed = new AtomicBoolean();

  private LibvirtConnection(HypervisorBackend backend) {
    this.backend = backend;
    this.virtTypes = new VirtTypeSelector(backend);
  }

  /** Opens the default URI. */
  public static LibvirtConnection open() {
    return open(defaultUri());
  }

  /**
   * Opens a URI, retrying for {@link #DEFAULT_CONNECT_RETRY} while the daemon is not answering.
   *
   * @throws ConnectionException naming the URI and libvirt's message
   */
  public static LibvirtConnection open(String uri) {
    return open(uri, DEFAULT_CONNECT_RETRY);
  }

  public static LibvirtConnection open(String uri, Duration retryFor) {
    Objects.requireNonNull(uri, "uri");
    LibvirtConnection c = new LibvirtConnection(LibvirtBackend.open(uri, retryFor));
    LOG.debug("connected to {}", uri);
    if (!"off".equalsIgnoreCase(System.getenv("AGENTVM_REAP"))) {
      // VMs left by a JVM that died without cleaning up; cheap when there are none
      Reaper.reapOrphans(c, VM.DEFAULT_SHUTDOWN_GRACE);
    }
    return c;
  }

  /** Wraps another backend (e.g. an in-memory fake for unit tests of pool logic). */
  public static LibvirtConnection using(HypervisorBackend backend) {
    return new LibvirtConnection(Objects.requireNonNull(backend, "backend"));
  }

  public static String defaultUri() {
    String env = System.getenv("AGENTVM_LIBVIRT_URI");
    return env != null && !env.isBlank() ? env : DEFAULT_URI;
  }

  public String uri() {
    return backend.uri();
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
    VMTemplate t = template.newBuilder().owner(OWNER).build();
    try {
      Files.createDirectories(t.runDir());
    } catch (IOException e) {
      throw new AgentVmException(
          "cannot create runtime directory " + t.runDir() + ": " + e.getMessage(), e);
    }
    DomainHandle d;
    try {
      d = backend.define(t.toDomainXml(type));
    } catch (RuntimeException e) {
      try {
        VM.deleteTree(t.runDir());
      } catch (IOException io) {
        e.addSuppressed(io);
      }
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

  /** Names of all domains on this connection, running or not. */
  public List<String> domainNames() {
    return backend.domainNames();
  }

  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      backend.close();
    }
  }
}
