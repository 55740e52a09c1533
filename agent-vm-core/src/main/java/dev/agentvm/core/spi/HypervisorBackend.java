package dev.agentvm.core.spi;

import dev.agentvm.core.QemuConfinement;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * What agent-vm needs from a hypervisor: the host, its domains ({@link DomainHandle}: lifecycle,
 * snapshots, memory images, streams) and its networks ({@link NetworkBackend}). Domains go in as
 * {@link VMTemplate}s and come out as {@link DomainDescription}s: callers never write or parse
 * domain XML. The libvirt backend is the real one; unit tests fake this interface. Implementations
 * must be thread-safe. Failures are reported as {@link dev.agentvm.core.AgentVmException} subtypes.
 */
public interface HypervisorBackend extends AutoCloseable {
  /** The URI this backend is connected to. */
  String uri();

  /** The domain types (e.g. {@code kvm}, {@code qemu}) the hypervisor advertises for x86_64. */
  Set<String> advertisedDomainTypes();

  /** A one-line description of host and hypervisor versions, for logs and probe caching. */
  String versionFingerprint();

  /**
   * How the host confines QEMU (security drivers, QEMU's user, seccomp). The default knows nothing:
   * for backends that are not libvirt (fakes in tests).
   */
  default QemuConfinement confinement() {
    return new QemuConfinement(uri(), List.of(), "", Optional.empty(), true);
  }

  /**
   * Defines a persistent domain from a template.
   *
   * @param type the virt type to define it with; never {@link VirtType#AUTO}
   */
  DomainHandle define(VMTemplate template, VirtType type);

  /**
   * Creates and starts a transient domain from a template: it disappears when it stops.
   *
   * @param type the virt type to start it with; never {@link VirtType#AUTO}
   */
  DomainHandle createTransient(VMTemplate template, VirtType type);

  Optional<DomainHandle> lookup(String name);

  /** Names of all domains, running or not. */
  List<String> domainNames();

  /**
   * Starts a domain from a memory image made by {@link DomainHandle#saveMemory}, under the identity
   * of {@code identity}: its name, UUID, generation id, owner, runtime directory (console log and
   * agent socket), the files of its disks (by target device), the directories of its shares (by
   * tag) and the MACs and filter parameters of its NICs (in order). The virtual hardware stays the
   * saved domain's. Restores of one image take turns, across threads and processes.
   *
   * @throws IllegalArgumentException if the saved domain has a disk or share {@code identity}
   *     lacks, or another number of NICs
   */
  DomainHandle restore(Path file, VMTemplate identity);

  /** The hypervisor's networks and network filters. */
  NetworkBackend networks();

  /** Registers a listener for lifecycle events of all domains of this connection. */
  void addLifecycleListener(DomainLifecycleListener listener);

  void removeLifecycleListener(DomainLifecycleListener listener);

  /** Whether the connection is still usable. */
  boolean isAlive();

  /**
   * Whether the hypervisor runs on this machine and sees its files (a local URI). A remote host
   * gets its images uploaded, and its VMs' agents are reached through the hypervisor's own streams.
   */
  default boolean isLocal() {
    return true;
  }

  /**
   * The host's CPUs, memory and active domains now (one round trip each; placement across hosts
   * reads it periodically).
   *
   * @throws dev.agentvm.core.HypervisorException if this backend cannot tell
   */
  default dev.agentvm.core.HostCapacity capacity() {
    throw new dev.agentvm.core.HypervisorException(
        "the backend for " + uri() + " does not report its capacity", null);
  }

  /**
   * The files agent-vm keeps on the host, for a host that does not see this machine's files; empty
   * for a local host (its VMs use this machine's files).
   */
  default Optional<dev.agentvm.core.HostStorage> hostStorage() {
    return Optional.empty();
  }

  /** Image files uploaded to the host through this backend so far (zero for a local host). */
  default long imageUploads() {
    return 0;
  }

  @Override
  void close();
}
