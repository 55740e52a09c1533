/**
 * Storage: qcow2 overlays, {@code SnapshotManager} and virtio-9p {@code FilesystemShare}. Empty
 * until the storage issue lands: the module exists so that the dependency direction (storage ->
 * core) is fixed from the start.
 */
package dev.agentvm.storage;
