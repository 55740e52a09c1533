package dev.agentvm.execution.sandbox;

import dev.agentvm.internal.Trees;
import dev.agentvm.storage.DiskImages;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;
import java.util.UUID;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The read-only qcow2 layers that sandboxes' workspace disks stand on, in {@code <root>/.layers}. A
 * layer never changes once made: a checkpoint or a fork freezes a sandbox's top overlay into a
 * layer and gives the sandbox (and each fork) a new overlay on it, so unchanged blocks are shared.
 * A layer is deleted when no sandbox record names it any more. The caller holds the root's lock.
 */
final class Layers {
  private static final Logger LOG = LoggerFactory.getLogger(Layers.class);
  static final String EMPTY = "empty-";

  private final Path dir;

  Layers(Path dir) {
    this.dir = dir;
  }

  Path path(String layer) {
    return dir.resolve(layer + ".qcow2");
  }

  /** The shared empty ext4 file system of {@code bytes}, made on first use. */
  String emptyBase(long bytes) throws IOException {
    String name = EMPTY + bytes;
    Path p = path(name);
    if (!Files.exists(p)) {
      Files.createDirectories(dir);
      DiskImages.createExt4(p, bytes, null);
    }
    return name;
  }

  /** Moves {@code top} (a stopped VM's overlay) into a new read-only layer and returns its name. */
  String freeze(Path top) throws IOException {
    return freezeAs(top, UUID.randomUUID().toString());
  }

  /** Like {@link #freeze}, under a name the caller chose (a warm image's, recorded first). */
  String freezeAs(Path top, String name) throws IOException {
    Path p = path(name);
    Files.createDirectories(dir);
    Files.move(top, p, StandardCopyOption.ATOMIC_MOVE);
    Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("r--r--r--"));
    return name;
  }

  /**
   * Deletes every layer not in {@code inUse} (empty bases stay: a cache). Warm images' layers are
   * in use while their records name them ({@link WarmImages#layers}).
   */
  void collect(Set<String> inUse) throws IOException {
    if (!Files.isDirectory(dir)) {
      return;
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, "*.qcow2")) {
      for (Path p : s) {
        String f = String.valueOf(p.getFileName());
        String name = f.substring(0, f.length() - ".qcow2".length());
        if (!name.startsWith(EMPTY) && !inUse.contains(name)) {
          LOG.debug("deleting unused layer {}", name);
          Trees.delete(p);
        }
      }
    }
  }
}
