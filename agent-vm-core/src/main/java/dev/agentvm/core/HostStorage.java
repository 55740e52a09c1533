package dev.agentvm.core;

import java.nio.file.Path;
import java.util.List;

/**
 * The files agent-vm keeps on a remote VM host, in its storage pool there ({@code agent-vm},
 * docs/scale-out.md): what VMs on that host need as files of their own, since they cannot use this
 * machine's. A VM's template may name files of the pool as its disks (writable qcow2 overlays
 * included), {@link VM#saveMemory} writes memory images into it and {@link
 * LibvirtConnection#restore} starts VMs from them. Names are 1 to 200 of {@code [A-Za-z0-9._-]},
 * not starting with a dot. Thread-safe.
 */
public interface HostStorage {
  /** The path on the host of the pool's file {@code name}. */
  Path path(String name);

  /**
   * The path on the host of a read-only copy of {@code local}'s content: sent once per content
   * (SHA-256) and file name, and reused by every VM and client of the host.
   */
  Path stage(Path local);

  /**
   * Creates the qcow2 file {@code name} of {@code capacityBytes} on the qcow2 file {@code backing}
   * (a file of the pool), readable by the host's root only; its path. A VM may have it as a
   * writable disk when its name ends in {@code .qcow2} (other pool files are read-only disks at
   * most).
   *
   * @throws HypervisorException if it exists or the host refused
   */
  Path createOverlay(String name, Path backing, long capacityBytes);

  /** Deletes the pool's file {@code name}; nothing happens if there is none. */
  void delete(String name);

  /** The names of the pool's files that start with {@code prefix}, as the host has them now. */
  List<String> names(String prefix);

  /**
   * Whether this client knows that {@code local}'s current content is on the host already (it was
   * staged, or found staged, through this connection). Answers from memory without calling the
   * host: a hint for placement, never a promise ({@link #stage} sends what is missing).
   */
  default boolean knowsStaged(Path local) {
    return false;
  }
}
