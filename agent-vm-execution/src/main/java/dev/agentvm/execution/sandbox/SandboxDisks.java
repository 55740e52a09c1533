package dev.agentvm.execution.sandbox;

import dev.agentvm.core.AgentVmException;
import dev.agentvm.core.HostStorage;
import dev.agentvm.internal.Trees;
import dev.agentvm.storage.DiskImages;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;

/**
 * Where the files of a host's sandboxes live: their workspace disks' top overlays, the read-only
 * layers below them and their memory images. On this machine they are files beside each sandbox's
 * record ({@link #local}); on a remote host they are files of the host's agent-vm pool ({@link
 * #onHost}), while the records stay here. Paths returned are the VM host's. The caller holds the
 * sandboxes' lock where a record and its files change together.
 */
abstract class SandboxDisks {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(SandboxDisks.class);

  static final String DISK = "disk.qcow2";

  /** The files of sandboxes whose VMs run on this machine. */
  static SandboxDisks local(Layers layers) {
    return new Local(layers);
  }

  /**
   * The files of sandboxes on a remote host, in its pool under {@code sbx.<tag>.}: {@code tag}
   * tells this client's sandboxes from other clients' there.
   */
  static SandboxDisks onHost(HostStorage storage, String tag, Layers localLayers) {
    return new OnHost(storage, tag, localLayers);
  }

  /** The path of the sandbox's top overlay, as its VM names it. */
  abstract Path top(Path dir, SandboxRecord rec);

  /**
   * Gives {@code rec} a new top overlay's name (on a host each top has its own, since a frozen top
   * stays where it is as a layer); before the record naming it is saved and the overlay made.
   */
  abstract void nameNewTop(SandboxRecord rec);

  /** Creates {@code rec}'s top overlay on {@code layer}. */
  abstract void createTop(Path dir, SandboxRecord rec, String layer) throws IOException;

  /** Deletes {@code rec}'s top overlay, if it exists. */
  abstract void deleteTop(Path dir, SandboxRecord rec) throws IOException;

  /** Turns {@code rec}'s top (its VM stopped) into a read-only layer; the layer's name. */
  abstract String freezeTop(Path dir, SandboxRecord rec) throws IOException;

  /** The shared empty file system of {@code bytes}, as a layer. */
  abstract String emptyBase(long bytes) throws IOException;

  /** The memory image {@code name} of the sandbox ({@code paused.save}, ...). */
  abstract Path memory(Path dir, SandboxRecord rec, String name);

  /** Where a memory image is saved before it counts (moved by {@link #commit}). */
  abstract Path partOf(Path memory);

  abstract void commit(Path part, Path memory) throws IOException;

  abstract void deleteMemory(Path memory) throws IOException;

  /**
   * Removes a memory image that is no longer needed, leaving the slow part to {@code later}: on
   * this machine the file is renamed out of the way at once and deleted there (ext4 takes about 80
   * ms to free a 190 MB image, which a resume would otherwise wait for), with any such file an
   * earlier process left. On a host it is deleted now (the next pause saves in the same place).
   */
  abstract void discardMemory(Path memory, java.util.concurrent.Executor later) throws IOException;

  /** The suffix of a memory image renamed by {@link #discardMemory}, to be deleted. */
  static final String DISCARDED = ".discarded";

  /**
   * Removes everything of a sandbox: its directory here and its top and memory images; {@code rec}
   * null for a sandbox whose record was never written. Returns the failure, if any.
   */
  abstract @Nullable IOException deleteAll(Path dir, @Nullable SandboxRecord rec);

  /**
   * Deletes the layers no sandbox needs: those not in what {@code inUse} returns when it is asked,
   * which is after the candidates were listed (so a layer made meanwhile is never a candidate).
   * {@code inUse} returns null when it cannot tell: nothing is deleted then.
   */
  abstract void collect(Supplier<@Nullable Set<String>> inUse) throws IOException;

  /** Whether the files are this machine's. */
  abstract boolean isLocal();

  /**
   * Where the memory of {@code key}'s warm image saved with {@code layer} is kept ({@link
   * WarmImages}): named after both, so that a restore that read an older record finds no file
   * rather than another capture's memory. {@code warmDir} is this machine's directory of warm
   * images.
   */
  abstract Path warmMemory(Path warmDir, String key, String layer);

  /** Where a capture saves the memory ({@code tmp}: the capture's scratch directory here). */
  abstract Path warmCapture(Path warmDir, String key, String layer, Path tmp);

  /** Deletes that warm memory, if it exists. */
  abstract void deleteWarmMemory(Path warmDir, String key, String layer) throws IOException;

  /** Names the layer a warm image's capture will leave, and its VM's top overlay with it. */
  abstract String nameWarmLayer(SandboxRecord rec);

  /**
   * Turns a finished capture into its layer {@code layer} and its memory into {@link #warmMemory}.
   */
  abstract void keepWarmCapture(Path warmDir, String key, Path tmp, SandboxRecord rec, String layer)
      throws IOException;

  /** Removes what a failed capture made outside its scratch directory. */
  abstract void deleteWarmCapture(Path tmp, SandboxRecord rec) throws IOException;

  private static final class Local extends SandboxDisks {
    private final Layers layers;

    Local(Layers layers) {
      this.layers = layers;
    }

    @Override
    Path top(Path dir, SandboxRecord rec) {
      return dir.resolve(DISK);
    }

    @Override
    void nameNewTop(SandboxRecord rec) {
      // always DISK in the sandbox's directory
    }

    @Override
    void createTop(Path dir, SandboxRecord rec, String layer) {
      DiskImages.createOverlay(layers.path(layer), top(dir, rec), 0);
    }

    @Override
    void deleteTop(Path dir, SandboxRecord rec) throws IOException {
      Files.deleteIfExists(top(dir, rec));
    }

    @Override
    String freezeTop(Path dir, SandboxRecord rec) throws IOException {
      return layers.freeze(top(dir, rec));
    }

    @Override
    String emptyBase(long bytes) throws IOException {
      return layers.emptyBase(bytes);
    }

    @Override
    Path memory(Path dir, SandboxRecord rec, String name) {
      return dir.resolve(name);
    }

    @Override
    Path partOf(Path memory) {
      return memory.resolveSibling(memory.getFileName() + ".part");
    }

    @Override
    void commit(Path part, Path memory) throws IOException {
      Files.move(part, memory, StandardCopyOption.ATOMIC_MOVE);
    }

    @Override
    void deleteMemory(Path memory) throws IOException {
      Files.deleteIfExists(memory);
    }

    @Override
    void discardMemory(Path memory, java.util.concurrent.Executor later) throws IOException {
      Path dir = java.util.Objects.requireNonNull(memory.toAbsolutePath().getParent(), "dir");
      Path gone = dir.resolve(memory.getFileName() + "." + UUID.randomUUID() + DISCARDED);
      try {
        Files.move(memory, gone, StandardCopyOption.ATOMIC_MOVE);
      } catch (java.nio.file.NoSuchFileException e) {
        // nothing to discard; earlier leftovers are still swept below
      }
      later.execute(
          () -> {
            try (java.util.stream.Stream<Path> files = Files.list(dir)) {
              for (Path f : files.filter(f -> f.toString().endsWith(DISCARDED)).toList()) {
                Files.deleteIfExists(f);
              }
            } catch (java.nio.file.NoSuchFileException e) {
              // the sandbox was closed meanwhile: its directory went, these files with it
            } catch (IOException | RuntimeException e) {
              // the sandbox's close deletes its directory, these files with it; and when this runs
              // on a resuming caller's thread, nothing here may fail a resume that worked
              LOG.warn("cannot delete discarded memory images in {}: {}", dir, e.toString());
            }
          });
    }

    @Override
    @Nullable IOException deleteAll(Path dir, @Nullable SandboxRecord rec) {
      return Trees.deleteQuietly(dir);
    }

    @Override
    void collect(Supplier<@Nullable Set<String>> inUse) throws IOException {
      Set<String> used = inUse.get();
      if (used != null) {
        layers.collect(used);
      }
    }

    @Override
    boolean isLocal() {
      return true;
    }

    @Override
    Path warmMemory(Path warmDir, String key, String layer) {
      return warmDir.resolve(key + "." + layer + ".save");
    }

    @Override
    Path warmCapture(Path warmDir, String key, String layer, Path tmp) {
      return tmp.resolve("memory.save");
    }

    @Override
    void deleteWarmMemory(Path warmDir, String key, String layer) throws IOException {
      Files.deleteIfExists(warmMemory(warmDir, key, layer));
    }

    @Override
    String nameWarmLayer(SandboxRecord rec) {
      return UUID.randomUUID().toString(); // the capture's top is DISK in its scratch directory
    }

    @Override
    void keepWarmCapture(Path warmDir, String key, Path tmp, SandboxRecord rec, String layer)
        throws IOException {
      layers.freezeAs(top(tmp, rec), layer);
      Files.move(
          warmCapture(warmDir, key, layer, tmp),
          warmMemory(warmDir, key, layer),
          StandardCopyOption.ATOMIC_MOVE,
          StandardCopyOption.REPLACE_EXISTING);
    }

    @Override
    void deleteWarmCapture(Path tmp, SandboxRecord rec) {
      // all in its scratch directory; a layer already frozen is collected once no record names it
    }
  }

  private static final class OnHost extends SandboxDisks {
    private static final String QCOW2 = ".qcow2";
    private static final java.util.regex.Pattern ID =
        java.util.regex.Pattern.compile("[a-z0-9-]{1,64}");
    private final HostStorage storage;
    private final String prefix;
    private final Layers localLayers;
    private final Map<String, Path> staged = new ConcurrentHashMap<>();

    OnHost(HostStorage storage, String tag, Layers localLayers) {
      this.storage = storage;
      this.prefix = "sbx." + tag + ".";
      this.localLayers = localLayers;
    }

    /** Layers made on the host: {@code sbx.<tag>.L.<uuid>} (ids are lower case, never "L"). */
    private String layerPrefix() {
      return prefix + "L.";
    }

    @Override
    Path top(Path dir, SandboxRecord rec) {
      String t = rec.top;
      if (t == null) {
        throw new SandboxException("sandbox " + rec.id + " has no top overlay on its host");
      }
      return storage.path(t + QCOW2);
    }

    @Override
    void nameNewTop(SandboxRecord rec) {
      rec.top = layerPrefix() + UUID.randomUUID();
    }

    @Override
    void createTop(Path dir, SandboxRecord rec, String layer) throws IOException {
      String t = rec.top;
      if (t == null) {
        throw new SandboxException("sandbox " + rec.id + " has no top overlay named");
      }
      Path backing = layerPath(layer);
      host(() -> storage.createOverlay(t + QCOW2, backing, rec.workspaceBytes));
    }

    private Path layerPath(String layer) throws IOException {
      if (layer.startsWith(Layers.EMPTY)) {
        Path known = staged.get(layer);
        if (known != null) {
          return known;
        }
        Path p = host(() -> storage.stage(localLayers.path(layer)));
        staged.put(layer, p);
        return p;
      }
      return storage.path(layer + QCOW2);
    }

    @Override
    void deleteTop(Path dir, SandboxRecord rec) throws IOException {
      String t = rec.top;
      if (t != null) {
        host(() -> storage.delete(t + QCOW2));
      }
    }

    @Override
    String freezeTop(Path dir, SandboxRecord rec) {
      String t = rec.top;
      if (t == null) {
        throw new SandboxException("sandbox " + rec.id + " has no top overlay on its host");
      }
      return t; // it stays as it is: no VM names it as its top any more
    }

    @Override
    String emptyBase(long bytes) throws IOException {
      return localLayers.emptyBase(bytes); // sent to the host when a top is made on it
    }

    @Override
    Path memory(Path dir, SandboxRecord rec, String name) {
      return storage.path(prefix + rec.id + "." + name.replace('/', '.'));
    }

    @Override
    Path partOf(Path memory) {
      return memory; // saved in place: the record, written after, is what makes it count
    }

    @Override
    void commit(Path part, Path memory) {
      // nothing to move
    }

    @Override
    void deleteMemory(Path memory) throws IOException {
      String name = String.valueOf(memory.getFileName());
      host(() -> storage.delete(name));
    }

    @Override
    void discardMemory(Path memory, java.util.concurrent.Executor later) throws IOException {
      deleteMemory(memory);
    }

    @Override
    @Nullable IOException deleteAll(Path dir, @Nullable SandboxRecord rec) {
      String id = String.valueOf(dir.getFileName());
      try {
        // a stray directory's name (an "L", say) must not become a prefix of other files
        if (ID.matcher(id).matches()) {
          for (String n : host(() -> storage.names(prefix + id + "."))) {
            host(() -> storage.delete(n));
          }
        }
        if (rec != null) {
          deleteTop(dir, rec);
        }
      } catch (IOException e) {
        return e;
      }
      return Trees.deleteQuietly(dir);
    }

    @Override
    void collect(Supplier<@Nullable Set<String>> inUse) throws IOException {
      java.util.List<String> candidates = host(() -> storage.names(layerPrefix()));
      Set<String> used = inUse.get();
      if (used == null) {
        return;
      }
      for (String n : candidates) {
        if (n.endsWith(QCOW2)) {
          String layer = n.substring(0, n.length() - QCOW2.length());
          if (!used.contains(layer)) {
            host(() -> storage.delete(n));
          }
        }
      }
      localLayers.collect(used);
    }

    @Override
    boolean isLocal() {
      return false;
    }

    @Override
    Path warmMemory(Path warmDir, String key, String layer) {
      String id = layer.startsWith(layerPrefix()) ? layer.substring(layerPrefix().length()) : layer;
      return storage.path(prefix + "W." + key + "." + id + ".save");
    }

    @Override
    Path warmCapture(Path warmDir, String key, String layer, Path tmp) {
      // saved in place: the warm image's record makes it count
      return warmMemory(warmDir, key, layer);
    }

    @Override
    void deleteWarmMemory(Path warmDir, String key, String layer) throws IOException {
      String name = String.valueOf(warmMemory(warmDir, key, layer).getFileName());
      host(() -> storage.delete(name));
    }

    @Override
    String nameWarmLayer(SandboxRecord rec) {
      nameNewTop(rec); // the capture's top stays where it is as the layer
      return java.util.Objects.requireNonNull(rec.top, "top");
    }

    @Override
    void keepWarmCapture(Path warmDir, String key, Path tmp, SandboxRecord rec, String layer) {
      // both are where they stay
    }

    @Override
    void deleteWarmCapture(Path tmp, SandboxRecord rec) throws IOException {
      deleteTop(tmp, rec);
    }

    /** A call to the host, its failures as {@link IOException}s like a local file's. */
    private static <T> T host(HostCall<T> call) throws IOException {
      try {
        return call.call();
      } catch (AgentVmException e) {
        throw new IOException(e.getMessage(), e);
      }
    }

    private static void host(Runnable call) throws IOException {
      host(
          () -> {
            call.run();
            return Boolean.TRUE;
          });
    }

    @FunctionalInterface
    private interface HostCall<T> {
      T call();
    }
  }
}
