package dev.agentvm.execution.sandbox;

import dev.agentvm.internal.FileLocks;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The warm images of one records directory, on this machine or a remote host: each is a memory
 * image ({@link SandboxDisks#warmMemory}) and the workspace layer it was saved with, recorded in
 * {@code <dir>/<key>.record} here. The record names the layer and says whether the capture
 * finished; it is written before a capture makes anything, so that a collection of unused layers
 * spares the layer ({@link #layers}) and the next capture of the key removes what a capture that
 * died left. Every capture leaves a layer of a new name, so a sandbox standing on an earlier one is
 * never changed under it. A record changes only under its key's restore lock ({@link
 * #restoreLock}), which restores of the image take too.
 */
final class WarmImages {
  private static final Logger LOG = LoggerFactory.getLogger(WarmImages.class);
  static final String RECORD = ".record";
  private static final String READY = "ready";
  private static final Pattern LAYER = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,199}");

  /** A complete warm image. */
  record Image(String key, Path memory, String layer) {}

  private final Path dir;
  private final SandboxDisks disks;

  WarmImages(Path dir, SandboxDisks disks) {
    this.dir = dir;
    this.disks = disks;
  }

  /** The lock that restores from {@code key}'s image, and every change to its record, take. */
  Path restoreLock(String key) {
    return dir.resolve(key + ".save.lock");
  }

  /** {@code key}'s image if its record says it is complete, else null. */
  @Nullable Image find(String key) throws IOException {
    Properties r = read(key);
    if (r == null || !READY.equals(r.getProperty("state"))) {
      return null;
    }
    String layer = r.getProperty("layer", "");
    if (!LAYER.matcher(layer).matches()) {
      LOG.warn("ignoring the warm image record {}: no valid layer name", key);
      return null;
    }
    return new Image(key, disks.warmMemory(dir, key, layer), layer);
  }

  /**
   * Removes what an earlier image or capture of {@code key} left (its memory and record; its layer
   * goes with the next collection once no sandbox stands on it). The caller holds the key's lock.
   */
  void clear(String key) throws IOException {
    FileLocks.withLock(
        restoreLock(key),
        () -> {
          clearLocked(key);
          return Boolean.TRUE;
        });
  }

  /** {@link #clear}, under the key's restore lock already. */
  private void clearLocked(String key) throws IOException {
    Properties r = read(key);
    if (r != null && LAYER.matcher(r.getProperty("layer", "")).matches()) {
      disks.deleteWarmMemory(dir, key, r.getProperty("layer"));
    }
    Files.deleteIfExists(record(key));
    Files.deleteIfExists(dir.resolve(key + ".save")); // an earlier version's
  }

  /**
   * Starts a capture of {@code key} from {@code rec}'s VM: names its layer and records it as being
   * captured. The caller holds the key's lock and the sandboxes' lock (so that no collection runs
   * between the naming and the record). Returns the layer's name.
   */
  String begin(String key, SandboxRecord rec) throws IOException {
    String layer = disks.nameWarmLayer(rec);
    FileLocks.withLock(
        restoreLock(key),
        () -> {
          write(key, layer, false);
          return Boolean.TRUE;
        });
    return layer;
  }

  /** Keeps a finished capture as {@code key}'s image. The caller holds the key's lock. */
  void keep(String key, Path tmp, SandboxRecord rec, String layer) throws IOException {
    FileLocks.withLock(
        restoreLock(key),
        () -> {
          disks.keepWarmCapture(dir, key, tmp, rec, layer);
          write(key, layer, true);
          return Boolean.TRUE;
        });
  }

  /** Removes what a failed capture made. The caller holds the key's lock. */
  void drop(String key, Path tmp, SandboxRecord rec) throws IOException {
    disks.deleteWarmCapture(tmp, rec);
    clear(key);
  }

  /** Notes that {@code key}'s image was restored from now: pruning spares images in use. */
  void used(String key) {
    try {
      Files.setLastModifiedTime(record(key), FileTime.from(Instant.now()));
    } catch (IOException e) {
      LOG.warn("cannot note the use of warm image {}: {}", key, e.toString());
    }
  }

  /**
   * Forgets {@code seen} if its record still names it (a restore from it failed: the next create
   * boots, the next warm-up captures again). Returns whether it did.
   */
  boolean forget(Image seen) throws IOException {
    return FileLocks.withLock(
        restoreLock(seen.key()),
        () -> {
          Properties r = read(seen.key());
          if (r == null
              || !READY.equals(r.getProperty("state"))
              || !seen.layer().equals(r.getProperty("layer"))) {
            return false; // made again meanwhile
          }
          disks.deleteWarmMemory(dir, seen.key(), seen.layer());
          Files.deleteIfExists(record(seen.key()));
          return true;
        });
  }

  /** Forgets every complete image (captures under way stay). Returns how many. */
  int forgetAll() throws IOException {
    int n = 0;
    for (String key : keys(RECORD, "")) {
      Image image = find(key);
      if (image != null && forget(image)) {
        n++;
      }
    }
    return n;
  }

  /** The layers that images and captures stand on: no sandbox record names them. */
  Set<String> layers() throws IOException {
    Set<String> layers = new HashSet<>();
    for (String key : keys(RECORD, "")) {
      Properties r = read(key);
      if (r != null) {
        layers.add(r.getProperty("layer", ""));
      }
    }
    return layers;
  }

  /**
   * Deletes the images other than {@code keep}'s not restored from since {@code before} (and the
   * records of captures begun before then that never finished), and memory images here that no
   * record names (an earlier capture's, or an earlier version's). Their layers go with the next
   * collection once no sandbox stands on them. Returns how many images went.
   */
  int prune(String keep, Instant before) throws IOException {
    int gone = 0;
    for (String key : keys(RECORD, keep)) {
      boolean deleted =
          FileLocks.withLock(
              restoreLock(key),
              () -> {
                Path r = record(key);
                if (!Files.exists(r)
                    || !Files.getLastModifiedTime(r).toInstant().isBefore(before)) {
                  return false;
                }
                clearLocked(key);
                return true;
              });
      if (deleted) {
        gone++;
      }
    }
    for (String name : keys(".save", "")) {
      int dot = name.indexOf('.');
      String key = dot < 0 ? name : name.substring(0, dot);
      Path file = dir.resolve(name + ".save");
      boolean deleted =
          FileLocks.withLock(
              restoreLock(key),
              () -> {
                Properties r = read(key);
                if (r != null && !READY.equals(r.getProperty("state"))) {
                  return false; // a capture under way: it moves its memory in when it keeps it
                }
                Image current = find(key);
                return (current == null || !current.memory().equals(file))
                    && Files.deleteIfExists(file);
              });
      if (deleted) {
        gone++;
      }
    }
    // libvirt's restore locks <memory>.lock: those of memory files gone go too (restores of a key
    // happen under its restore lock, held here); <key>.save.lock itself is a restore lock
    for (String name : keys(".save.lock", "")) {
      int dot = name.indexOf('.');
      if (dot < 0) {
        continue;
      }
      String key = name.substring(0, dot);
      FileLocks.withLock(
          restoreLock(key),
          () -> {
            if (!Files.exists(dir.resolve(name + ".save"))) {
              Files.deleteIfExists(dir.resolve(name + ".save.lock"));
            }
            return Boolean.TRUE;
          });
    }
    return gone;
  }

  private Path record(String key) {
    return dir.resolve(key + RECORD);
  }

  private @Nullable Properties read(String key) throws IOException {
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(record(key))) {
      p.load(in);
    } catch (NoSuchFileException e) {
      return null;
    }
    return p;
  }

  private void write(String key, String layer, boolean ready) throws IOException {
    Properties p = new Properties();
    p.setProperty("layer", layer);
    p.setProperty("state", ready ? READY : "capturing");
    Files.createDirectories(dir);
    Path tmp = dir.resolve(key + RECORD + ".tmp");
    try (OutputStream out = Files.newOutputStream(tmp)) {
      p.store(out, "agent-vm: a warm image");
    }
    Files.move(
        tmp, record(key), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  /** The keys of the files here named {@code <key><suffix>}, other than {@code keep}. */
  private List<String> keys(String suffix, String keep) throws IOException {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(f -> String.valueOf(f.getFileName()))
          .filter(n -> n.endsWith(suffix) && n.length() > suffix.length())
          .map(n -> n.substring(0, n.length() - suffix.length()))
          .filter(k -> !k.equals(keep))
          .toList();
    }
  }
}
