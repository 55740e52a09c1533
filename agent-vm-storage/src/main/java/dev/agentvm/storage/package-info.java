/**
 * Storage: qcow2 overlays and ext4 images ({@link dev.agentvm.storage.DiskImages}), snapshots
 * ({@link dev.agentvm.storage.SnapshotManager}), memory-image clones ({@link
 * dev.agentvm.storage.MemoryImage}), 9p workspaces ({@link dev.agentvm.storage.FilesystemShare})
 * and persistent slots.
 */
package dev.agentvm.storage;
