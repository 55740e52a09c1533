package dev.agentvm.core.spi;

import dev.agentvm.core.agent.AgentTransport;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** One domain of a {@link HypervisorBackend}. Thread-safe. */
public interface DomainHandle {
  String name();

  String uuid();

  /** The current state as the hypervisor reports it. */
  DomainStatus status();

  void start();

  /** Asks the guest to shut down (ACPI power button); returns at once. */
  void requestShutdown();

  /** Stops the domain at once, like pulling the plug. */
  void destroy();

  /** Removes the definition, with its snapshots' metadata and any managed save. */
  void undefine();

  void suspend();

  void resume();

  /** What the domain's definition says, live if it runs. */
  DomainDescription description();

  /**
   * What the persistent definition says (what the next start would use, without runtime details):
   * its {@link DomainDescription#fingerprint} changes only when the configuration does.
   */
  DomainDescription persistentDescription();

  /**
   * The hypervisor's own text of the definition (libvirt domain XML, live if running), for
   * diagnostics and tests. agent-vm never parses it outside the backend: use {@link #description}.
   */
  String xml();

  /**
   * Creates an internal snapshot (stored in the domain's qcow2 disks). A running domain's snapshot
   * includes its memory and device state.
   */
  void createSnapshot(String name, String description);

  /** Names of the domain's snapshots. */
  List<String> snapshotNames();

  /** Reverts the domain to a snapshot: a running snapshot leaves it running at that point. */
  void revertToSnapshot(String name);

  /** Deletes a snapshot (its data in the disks too). */
  void deleteSnapshot(String name);

  /**
   * Saves the running domain's memory and device state to a file and stops it ({@code
   * virDomainSaveFlags}). Start copies of it with {@link HypervisorBackend#restore}.
   */
  void saveMemory(Path file);

  /**
   * What the running domain costs the host ({@code virDomainGetInfo}'s CPU time, {@code
   * virDomainMemoryStats}' RSS).
   */
  dev.agentvm.core.VmStats stats();

  /**
   * Opens the domain's virtio-serial channel through the hypervisor ({@code virDomainOpenChannel}),
   * on a connection of its own. Works for remote URIs, where the channel's socket is not local.
   */
  AgentTransport.Connection openChannel(String channelName) throws IOException;

  /**
   * Opens a live stream of the domain's serial console ({@code virDomainOpenConsole}), on a
   * connection of its own; fails if another client holds the console.
   */
  AgentTransport.Connection openConsole() throws IOException;

  /**
   * At most the last {@code maxBytes} of the guest's console log, wherever the host keeps it; empty
   * if there is none (yet).
   */
  default java.util.Optional<byte[]> consoleTail(int maxBytes) {
    return java.util.Optional.empty();
  }
}
