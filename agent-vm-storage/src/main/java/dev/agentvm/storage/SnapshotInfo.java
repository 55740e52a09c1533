package dev.agentvm.storage;

import java.time.Instant;
import java.util.Objects;

/**
 * One snapshot of a VM, as recorded by {@link SnapshotManager}.
 *
 * @param name unique per VM
 * @param vm the VM's name
 * @param kind whether memory and device state are included
 * @param createdAt when it was taken
 * @param description free text, may be empty
 * @param parent the snapshot the VM was at when this one was taken, or empty
 * @param configHash SHA-256 of the VM's definition when it was taken; a snapshot is only restored
 *     onto the same definition
 */
public record SnapshotInfo(
    String name,
    String vm,
    Kind kind,
    Instant createdAt,
    String description,
    String parent,
    String configHash) {

  /** What a snapshot holds. */
  public enum Kind {
    /** Disks, memory and device state of a running (or paused) VM: restore resumes it there. */
    FULL,
    /** Disks of a stopped VM: restore leaves it stopped with those disks. */
    DISK
  }

  public SnapshotInfo {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(vm, "vm");
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(createdAt, "createdAt");
    description = description == null ? "" : description;
    parent = parent == null ? "" : parent;
    Objects.requireNonNull(configHash, "configHash");
  }
}
