package dev.agentvm.image;

import dev.agentvm.internal.FileLocks;
import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * The image cache's directory {@code <cache>/images}: one build lock for every builder (micro
 * images and package disks, threads and processes alike), stale temporaries, old images.
 */
final class ImageCache {
  private ImageCache() {}

  /** Runs {@code body} under the cache's build lock ({@code images/.build.lock}). */
  static <T> T withBuildLock(Path images, FileLocks.Locked<T> body) throws IOException {
    return FileLocks.withLock(images.resolve(".build.lock"), body);
  }

  /** Images kept besides the newest; older ones (from earlier inputs) are deleted. */
  static final int KEEP_OLD_IMAGES = 2;

  /**
   * Deletes directories named {@code prefix*} beside {@code current}, keeping the newest few and
   * every one a live holder pins ({@link ImagePins}).
   */
  static void pruneOld(
      Path images, String prefix, Path current, int keep, Consumer<String> progress)
      throws IOException {
    List<Path> old;
    try (Stream<Path> s = Files.list(images)) {
      old =
          s.filter(p -> PathParts.name(p).startsWith(prefix) && !p.equals(current))
              .sorted(
                  Comparator.comparing(
                          (Path p) -> {
                            try {
                              return Files.getLastModifiedTime(p);
                            } catch (IOException e) {
                              return FileTime.fromMillis(0);
                            }
                          })
                      .reversed())
              .toList();
    }
    for (Path p : old.subList(Math.min(keep, old.size()), old.size())) {
      if (ImagePins.pinned(p)) {
        progress.accept("keeping old image " + p + ": a paused sandbox or warm image needs it");
        continue;
      }
      progress.accept("removing old image " + p);
      Trees.delete(p);
    }
  }

  /**
   * Makes a finished image directory readable (not writable) by every user: QEMU runs as its own
   * user (libvirt's qemu user, {@code Setting.QEMU_USER}) and must read the kernel, the initramfs
   * and the package disk. Images hold only Debian packages and the agent, no secrets.
   */
  static void publishDirectory(Path dir) throws IOException {
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
  }

  /**
   * Makes a finished image file readable (not writable) by every user: see {@link
   * #publishDirectory}.
   */
  static void publishFile(Path file) throws IOException {
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r--r--"));
  }

  /** Writes one cache entry's files into the directory it is given. */
  @FunctionalInterface
  interface EntryBuilder {
    void build(Path into) throws IOException;
  }

  /**
   * Builds a cache entry in a temporary directory beside it and renames it into place, so a build
   * that fails or is interrupted never leaves a half entry that a later run would use. Call it
   * under the build lock (it also removes temporaries of builds that died).
   *
   * @throws ImageBuildException naming {@code what} when the build fails
   */
  static void buildAtomically(
      Path images, String tempPrefix, Path entry, String what, EntryBuilder builder)
      throws IOException {
    removeStaleTemps(images);
    Path tmp = Files.createTempDirectory(images, tempPrefix);
    try {
      builder.build(tmp);
      publishDirectory(tmp);
      Files.move(tmp, entry, StandardCopyOption.ATOMIC_MOVE);
    } catch (ImageBuildException e) {
      Trees.delete(tmp);
      throw e;
    } catch (IOException | RuntimeException e) {
      Trees.delete(tmp);
      throw new ImageBuildException("building " + what + " failed: " + e, e);
    }
  }

  static void removeStaleTemps(Path images) throws IOException {
    try (Stream<Path> s = Files.list(images)) {
      for (Path p : s.filter(p -> PathParts.name(p).startsWith(".tmp-")).toList()) {
        Trees.delete(p); // we hold the build lock: no live build owns these
      }
    }
  }
}
