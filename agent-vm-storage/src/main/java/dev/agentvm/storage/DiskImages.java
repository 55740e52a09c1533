package dev.agentvm.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * qcow2 images on the local host, made with {@code qemu-img} and {@code mkfs.ext4}: read-only base
 * images and per-VM copy-on-write overlays on them.
 *
 * <pre>{@code
 * DiskImages.createExt4(base, 64L << 20, contentDir);          // once: a base with files in it
 * DiskImages.createOverlay(base, runDir.resolve("vda.qcow2"), 256L << 20);  // per VM, bigger
 * }</pre>
 *
 * <p>Files are made under a temporary name and renamed into place, so an interrupted call never
 * leaves an image that looks complete.
 */
public final class DiskImages {
  private static final Logger LOG = LoggerFactory.getLogger(DiskImages.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Duration TOOL_TIMEOUT = Duration.ofMinutes(5);

  /**
   * What {@code qemu-img info} says of an image.
   *
   * @param virtualSize the size the guest sees, in bytes
   * @param format {@code qcow2}, {@code raw}, ...
   * @param backingFile the image this one is an overlay on, if any
   * @param snapshots names of the internal snapshots stored in it
   */
  public record Info(
      long virtualSize, String format, Optional<Path> backingFile, List<String> snapshots) {
    public Info {
      snapshots = List.copyOf(snapshots); // no copy when it is one already
    }
  }

  private DiskImages() {}

  /**
   * Reads an image's format, virtual size, backing file and internal snapshots (works while a VM
   * uses the image: shared read), its format probed: only for images this library made (probing a
   * disk a guest wrote would believe whatever header it holds; use {@link #info(Path, String)}
   * there).
   *
   * @throws StorageException if the file is missing or not an image
   */
  public static Info info(Path image) {
    return info(image, null);
  }

  /**
   * What qemu-img says of {@code image} read as {@code format} ({@code qcow2}, {@code raw}), not
   * probed: a raw disk a guest wrote can hold anything, a qcow2 header naming a host file as its
   * backing file included.
   *
   * @throws StorageException if the file is missing or not an image of that format
   */
  public static Info info(Path image, @Nullable String format) {
    if (!Files.isRegularFile(image)) {
      throw new StorageException("disk image " + image + " does not exist");
    }
    List<String> cmd = new ArrayList<>(List.of("qemu-img", "info", "-U", "--output=json"));
    if (format != null) {
      cmd.add("-f");
      cmd.add(format);
    }
    cmd.add(image.toString());
    String out = Tools.run(cmd, TOOL_TIMEOUT);
    try {
      JsonNode n = JSON.readTree(out);
      List<String> snaps = new ArrayList<>();
      n.path("snapshots").forEach(s -> snaps.add(s.path("name").asText()));
      String backing = n.path("full-backing-filename").asText(n.path("backing-filename").asText());
      return new Info(
          n.path("virtual-size").asLong(),
          n.path("format").asText(),
          backing.isEmpty() ? Optional.empty() : Optional.of(Path.of(backing)),
          List.copyOf(snaps));
    } catch (IOException e) {
      throw new StorageException("unreadable qemu-img output for " + image + ": " + out, e);
    }
  }

  /**
   * Makes a qcow2 overlay on the qcow2 image {@code base} (read as qcow2, never probed): the VM
   * writes into the overlay, never into the base.
   *
   * @param virtualSize the disk size the guest sees, in bytes; 0 keeps the base's size. Growing the
   *     disk does not grow the filesystem on it.
   * @throws IllegalArgumentException if {@code virtualSize} is smaller than the base's
   * @throws StorageException if the overlay exists already or qemu-img fails
   */
  public static Path createOverlay(Path base, Path overlay, long virtualSize) {
    return createOverlay(base, "qcow2", overlay, virtualSize);
  }

  /**
   * Makes a qcow2 overlay on {@code base}, which is read as {@code baseFormat} and never probed
   * (see {@link #info(Path, String)}).
   */
  public static Path createOverlay(Path base, String baseFormat, Path overlay, long virtualSize) {
    Info b = info(base, baseFormat);
    if (virtualSize != 0 && virtualSize < b.virtualSize()) {
      throw new IllegalArgumentException(
          "virtualSize must be 0 or >= the base's "
              + b.virtualSize()
              + " bytes (shrinking would cut off data), was "
              + virtualSize);
    }
    if (Files.exists(overlay)) {
      throw new StorageException("overlay " + overlay + " exists already");
    }
    List<String> cmd =
        new ArrayList<>(
            List.of(
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                b.format(),
                "-b",
                base.toAbsolutePath().toString()));
    Path tmp = temp(overlay);
    cmd.add(tmp.toString());
    if (virtualSize != 0) {
      cmd.add(Long.toString(virtualSize));
    }
    try {
      Files.createDirectories(directoryOf(overlay));
      Tools.run(cmd, TOOL_TIMEOUT);
      Files.move(tmp, overlay, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new StorageException("creating overlay " + overlay + ": " + e.getMessage(), e);
    } finally {
      deleteQuietly(tmp);
    }
    LOG.debug("overlay {} on {} ({} bytes)", overlay, base, virtualSize);
    return overlay;
  }

  /**
   * Makes a qcow2 image holding an ext4 filesystem of {@code size} bytes with the files of {@code
   * content} in it (or empty), and makes it read-only: fit to be a base image.
   *
   * @throws StorageException if the image exists already or a tool fails
   */
  public static Path createExt4(Path image, long size, @Nullable Path content) {
    if (size < (8L << 20)) {
      throw new IllegalArgumentException("size must be >= 8 MiB, was " + size);
    }
    if (Files.exists(image)) {
      throw new StorageException("disk image " + image + " exists already");
    }
    Path raw = temp(image.resolveSibling(image.getFileName() + ".raw"));
    Path tmp = temp(image);
    try {
      Files.createDirectories(directoryOf(image));
      List<String> mkfs =
          new ArrayList<>(
              List.of("mkfs.ext4", "-q", "-F", "-L", "agentvm", "-E", "root_owner=0:0"));
      if (content != null) {
        mkfs.add("-d");
        mkfs.add(content.toAbsolutePath().toString());
      }
      mkfs.add(raw.toString());
      mkfs.add((size / 1024) + "k");
      Tools.run(mkfs, TOOL_TIMEOUT);
      Tools.run(
          List.of(
              "qemu-img",
              "convert",
              "-q",
              "-f",
              "raw",
              "-O",
              "qcow2",
              raw.toString(),
              tmp.toString()),
          TOOL_TIMEOUT);
      Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("r--r--r--"));
      Files.move(tmp, image, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new StorageException("creating " + image + ": " + e.getMessage(), e);
    } finally {
      deleteQuietly(raw);
      deleteQuietly(tmp);
    }
    LOG.debug("ext4 image {} ({} bytes)", image, size);
    return image;
  }

  private static Path directoryOf(Path file) {
    Path dir = file.toAbsolutePath().getParent();
    if (dir == null) {
      throw new IllegalArgumentException("not a file path: " + file);
    }
    return dir;
  }

  private static Path temp(Path target) {
    return target.resolveSibling(
        "."
            + target.getFileName()
            + ".tmp-"
            + ProcessHandle.current().pid()
            + "-"
            + System.nanoTime());
  }

  static void deleteQuietly(Path p) {
    try {
      Files.deleteIfExists(p);
    } catch (IOException e) {
      LOG.warn("could not remove {}: {}", p, e.getMessage());
    }
  }
}
