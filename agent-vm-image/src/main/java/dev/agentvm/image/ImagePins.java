package dev.agentvm.image;

import dev.agentvm.internal.Hashing;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps an image in the cache while something outside it still needs the image: a paused sandbox
 * resumes with the kernel and initramfs it was made with, long after newer images were built. A pin
 * is a file in the image's {@code .pins/} naming its holder, a path that exists while the holder
 * needs the image (a sandbox's directory; warm images do not pin: one made from an older image is
 * never used again, its key names the image). Pruning skips an image with a live pin and removes
 * pins whose holder is gone, so a holder that vanished without unpinning (a crash, the reaper)
 * holds nothing for long.
 */
public final class ImagePins {
  private static final Logger LOG = LoggerFactory.getLogger(ImagePins.class);
  static final String DIR = ".pins";

  private ImagePins() {}

  /**
   * Pins the cache image that holds {@code imageFile} (its kernel, initramfs or package disk) for
   * {@code holder}. Does nothing for a file that is not in an image directory of a cache. Best
   * effort: a cache this process may not write to (a shared, read-only one) is logged, not thrown.
   */
  public static void pin(Path imageFile, Path holder) {
    Optional<Path> image = imageDir(imageFile);
    if (image.isEmpty()) {
      return;
    }
    Path pins = image.get().resolve(DIR);
    Path pin = pins.resolve(name(holder));
    try {
      if (!Files.exists(pin)) {
        if (!Files.isDirectory(pins)) {
          // pruning orders images by their directory's time: a first pin must not make one "new"
          java.nio.file.attribute.FileTime made = Files.getLastModifiedTime(image.get());
          Files.createDirectories(pins);
          Files.setLastModifiedTime(image.get(), made);
        }
        Path tmp = Files.createTempFile(pins, ".pin-", ".tmp");
        Files.writeString(tmp, holder.toAbsolutePath().toString(), StandardCharsets.UTF_8);
        Files.move(tmp, pin, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        try (java.util.stream.Stream<Path> all = Files.list(pins)) {
          if (all.limit(SWEEP_AT + 1L).count() > SWEEP_AT) {
            pinned(image.get()); // drops the pins of holders that went without unpinning
          }
        }
      }
    } catch (IOException e) {
      LOG.warn(
          "cannot pin image {} for {} ({}): pruning the cache may remove it while it is needed",
          image.get(),
          holder,
          e.toString());
    }
  }

  /**
   * Takes back {@code holder}'s pin of the image holding {@code imageFile} (a holder that goes away
   * without it is noticed later anyway). Best effort, like {@link #pin}.
   */
  public static void unpin(Path imageFile, Path holder) {
    Optional<Path> image = imageDir(imageFile);
    if (image.isPresent()) {
      try {
        Files.deleteIfExists(image.get().resolve(DIR).resolve(name(holder)));
      } catch (IOException e) {
        LOG.debug("cannot unpin image {} for {}: {}", image.get(), holder, e.toString());
      }
    }
  }

  /**
   * Pins kept before a pin sweeps out those whose holder is gone (the newest image is never
   * pruned).
   */
  static final int SWEEP_AT = 256;

  /** Whether a live holder pins {@code imageDir}; pins whose holder is gone are removed. */
  static boolean pinned(Path imageDir) throws IOException {
    Path pins = imageDir.resolve(DIR);
    boolean live = false;
    try (DirectoryStream<Path> s = Files.newDirectoryStream(pins)) {
      for (Path pin : s) {
        if (PathParts.name(pin).startsWith(".")) {
          continue; // a pin being written
        }
        String holder;
        try {
          holder = Files.readString(pin, StandardCharsets.UTF_8).trim();
        } catch (NoSuchFileException gone) {
          continue;
        }
        if (!holder.isEmpty() && Files.exists(Path.of(holder))) {
          live = true;
        } else {
          Files.deleteIfExists(pin);
        }
      }
    } catch (NoSuchFileException none) {
      return false;
    }
    return live;
  }

  /** The image directory ({@code <cache>/images/<micro-|packages-...>}) holding {@code file}. */
  static Optional<Path> imageDir(Path file) {
    Path dir = file.toAbsolutePath().normalize().getParent();
    Path images = dir == null ? null : dir.getParent();
    if (dir == null
        || images == null
        || !"images".equals(PathParts.name(images))
        || !(PathParts.name(dir).startsWith("micro-")
            || PathParts.name(dir).startsWith("packages-"))) {
      return Optional.empty();
    }
    return Optional.of(dir);
  }

  private static String name(Path holder) {
    return Hashing.sha256Hex(holder.toAbsolutePath().toString().getBytes(StandardCharsets.UTF_8))
        .substring(0, 24);
  }
}
