package dev.agentvm.core.spi;

import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * What agent-vm needs from a hypervisor. The libvirt backend is the real one; implementations must
 * be thread-safe. Failures are reported as {@link dev.agentvm.core.AgentVmException} subtypes.
 */
public interface HypervisorBackend extends AutoCloseable {
  /** The URI this backend is connected to. */
  String uri();

  /** The domain types (e.g. {@code kvm}, {@code qemu}) the hypervisor advertises for x86_64. */
  Set<String> advertisedDomainTypes();

  /** A one-line description of host and hypervisor versions, for logs and probe caching. */
  String versionFingerprint();

  /** Defines a persistent domain. */
  DomainHandle define(String xml);

  /** Creates and starts a transient domain: it disappears when it stops. */
  DomainHandle createTransient(String xml);

  Optional<DomainHandle> lookup(String name);

  /**
   * Starts a domain from a memory image made by {@link DomainHandle#saveMemory}. {@code edit} sees
   * the saved domain XML and returns the XML to start under ({@code null} or the same to keep it);
   * it may change the domain's identity (name, UUID, generation id) and file paths, but must keep
   * the virtual hardware: that is not checked. Restores of one image (and their edits) take turns,
   * across threads and processes.
   */
  DomainHandle restore(
      java.nio.file.Path file, java.util.function.@Nullable UnaryOperator<String> edit);

  /** The domain XML stored in a memory image made by {@link DomainHandle#saveMemory}. */
  String savedImageXml(java.nio.file.Path file);

  /** Names of all networks, active or not. */
  List<String> networkNames();

  /** A network's persistent definition, if it exists. */
  Optional<String> networkXml(String name);

  /** Defines a persistent network (not started). */
  void defineNetwork(String xml);

  boolean isNetworkActive(String name);

  void startNetwork(String name);

  void stopNetwork(String name);

  void undefineNetwork(String name);

  /**
   * Adds or removes a DHCP host reservation ({@code <host mac= ip= name=/>}) of a network, in its
   * definition and, if it runs, live ({@code virNetworkUpdate}). libvirt refuses to add an entry
   * whose MAC, IP or name is taken.
   */
  void updateDhcpHost(String network, boolean add, String hostXml);

  /** Names of all nwfilters. */
  List<String> filterNames();

  /** An nwfilter's definition, if it exists. */
  Optional<String> filterXml(String name);

  /** Defines (or redefines) an nwfilter. */
  void defineFilter(String xml);

  void undefineFilter(String name);

  /** Names of all domains, running or not. */
  List<String> domainNames();

  /** Registers a listener for lifecycle events of all domains of this connection. */
  void addLifecycleListener(DomainLifecycleListener listener);

  void removeLifecycleListener(DomainLifecycleListener listener);

  /** Whether the connection is still usable. */
  boolean isAlive();

  @Override
  void close();
}
