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
 * needs the image (a sandbox's directory, a warm image's file). Pruning skips an image with a live
 * pin and removes pins whose holder is gone, so a holder that vanished without unpinning (a crash,
 * the reaper) holds nothing for long.
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
        Files.createDirectories(pins);
        Path tmp = Files.createTempFile(pins, ".pin-", ".tmp");
        Files.writeString(tmp, holder.toAbsolutePath().toString(), StandardCharsets.UTF_8);
        Files.move(tmp, pin, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
      }
    } catch (IOException e) {
      LOG.warn(
          "cannot pin image {} for {} ({}): pruning the cache may remove it while it is needed",
          image.get(),
          holder,
          e.toString());
    }
  }

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
