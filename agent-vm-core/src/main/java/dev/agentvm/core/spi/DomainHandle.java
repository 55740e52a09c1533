package dev.agentvm.core.spi;

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

  void undefine();

  void suspend();

  void resume();

  /**
   * Creates an internal snapshot (stored in the domain's qcow2 disks) from libvirt snapshot XML. A
   * running domain's snapshot includes its memory and device state.
   */
  void createSnapshot(String snapshotXml);

  /** Names of the domain's snapshots. */
  java.util.List<String> snapshotNames();

  /** Reverts the domain to a snapshot: a running snapshot leaves it running at that point. */
  void revertToSnapshot(String name);

  /** Deletes a snapshot (its data in the disks too). */
  void deleteSnapshot(String name);

  /** The domain XML, live if running. */
  String xml();

  /** The persistent definition's XML (what the next start would use), without runtime details. */
  String inactiveXml();

  /**
   * Saves the running domain's memory and device state to a file and stops it ({@code
   * virDomainSaveFlags}). Restore with {@link HypervisorBackend#restore}.
   */
  void saveMemory(java.nio.file.Path file);

  /**
   * Opens the domain's virtio-serial channel through the hypervisor ({@code virDomainOpenChannel}),
   * on a connection of its own. Works for remote URIs, where the channel's socket is not local.
   */
  dev.agentvm.core.agent.AgentTransport.Connection openChannel(String channelName)
      throws java.io.IOException;

  /**
   * Opens a live stream of the domain's serial console ({@code virDomainOpenConsole}), on a
   * connection of its own; fails if another client holds the console.
   */
  dev.agentvm.core.agent.AgentTransport.Connection openConsole() throws java.io.IOException;
}
