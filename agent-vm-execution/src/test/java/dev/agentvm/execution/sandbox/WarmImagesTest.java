package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.HostStorage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The records of warm images: what counts as complete, what a collection spares, what a failed or
 * repeated capture, a failed restore and pruning remove. A remote host's pool is a set of names
 * here; the real pool and real captures are exercised by RemoteSandboxIT and SandboxIT.
 */
class WarmImagesTest {
  private static final String TAG = "sbx.0123456789ab.";
  private final Set<String> pool = new ConcurrentSkipListSet<>();
  private final HostStorage storage =
      new HostStorage() {
        @Override
        public Path path(String name) {
          return Path.of("/pool").resolve(name);
        }

        @Override
        public Path stage(Path local) {
          return path(String.valueOf(local.getFileName()));
        }

        @Override
        public Path createOverlay(String name, Path backing, long capacityBytes) {
          pool.add(name);
          return path(name);
        }

        @Override
        public void delete(String name) {
          pool.remove(name);
        }

        @Override
        public List<String> names(String prefix) {
          return pool.stream().filter(n -> n.startsWith(prefix)).toList();
        }
      };

  @TempDir Path tmp;

  private Path dir() {
    return tmp.resolve(".warm");
  }

  private SandboxDisks hostDisks() {
    return SandboxDisks.onHost(storage, "0123456789ab", new Layers(tmp.resolve(".layers")));
  }

  private WarmImages onHost() {
    return new WarmImages(dir(), hostDisks());
  }

  /** The pool's name of the memory of {@code key}'s capture that left {@code layer}. */
  private String memory(String key, String layer) {
    return String.valueOf(hostDisks().warmMemory(dir(), key, layer).getFileName());
  }

  /** A capture on the host: begun, its top and memory made there. Returns its layer. */
  private String capture(WarmImages warm, String key, boolean keep) throws Exception {
    SandboxRecord rec = new SandboxRecord();
    String layer = warm.begin(key, rec);
    assertEquals(rec.top, layer, "the capture's top stays as the layer");
    pool.add(layer + ".qcow2");
    pool.add(memory(key, layer));
    if (keep) {
      warm.keep(key, tmp, rec, layer);
    }
    return layer;
  }

  @Test
  void aCaptureCountsOnceKeptAndItsLayerIsSparedFromTheStart() throws Exception {
    WarmImages warm = onHost();
    assertNull(warm.find("k1"));
    SandboxRecord rec = new SandboxRecord();
    String layer = warm.begin("k1", rec);
    assertTrue(layer.startsWith(TAG + "L."), layer);
    assertEquals(Set.of(layer), warm.layers(), "a collection spares it while capturing");
    assertNull(warm.find("k1"), "not kept yet");

    warm.keep("k1", tmp, rec, layer);
    WarmImages.Image image = warm.find("k1");
    assertNotNull(image);
    assertEquals(layer, image.layer());
    assertEquals(
        Path.of("/pool/" + TAG + "W.k1." + layer.substring((TAG + "L.").length()) + ".save"),
        image.memory(),
        "named after the capture: a restore that read an older record finds no file");
    assertNotNull(onHost().find("k1"), "another object on the same records finds it");
  }

  @Test
  void aNewCaptureClearsTheLastOneAndLeavesItsLayerToTheCollection() throws Exception {
    WarmImages warm = onHost();
    String first = capture(warm, "k1", false); // the process died here
    warm.clear("k1");
    assertFalse(pool.contains(memory("k1", first)), "the old memory is deleted");
    assertEquals(Set.of(), warm.layers(), "the old layer is no longer spared");
    SandboxRecord rec = new SandboxRecord();
    String second = warm.begin("k1", rec);
    assertNotEquals(first, second, "never the same layer twice");
    pool.add(second + ".qcow2");

    warm.drop("k1", tmp, rec); // this capture failed
    assertEquals(Set.of(), warm.layers());
    assertFalse(Files.exists(dir().resolve("k1" + WarmImages.RECORD)));
    assertEquals(Set.of(first + ".qcow2"), pool, "its top is deleted; the first is collected");
  }

  @Test
  void aFailedRestoreForgetsTheImageItReadUnlessItWasMadeAgain() throws Exception {
    WarmImages warm = onHost();
    capture(warm, "k1", true);
    WarmImages.Image seen = Objects.requireNonNull(warm.find("k1"));
    warm.clear("k1");
    String again = capture(warm, "k1", true); // made again meanwhile
    assertFalse(warm.forget(seen), "the new image is not the one that failed");
    WarmImages.Image now = Objects.requireNonNull(warm.find("k1"));
    assertTrue(warm.forget(now));
    assertNull(warm.find("k1"));
    assertFalse(pool.contains(memory("k1", again)));
  }

  @Test
  void aRecordWithoutAValidLayerNameIsNotAnImage() throws Exception {
    Files.createDirectories(dir());
    Files.writeString(dir().resolve("k1" + WarmImages.RECORD), "layer=../x\nstate=ready\n");
    assertNull(onHost().find("k1"));
  }

  @Test
  void pruningDeletesOtherImagesUnusedSinceStaleCapturesAndUnrecordedMemory() throws Exception {
    WarmImages warm = onHost();
    Instant before = Instant.now().minusSeconds(3600);
    String old = capture(warm, "old", true);
    capture(warm, "recent", true);
    capture(warm, "kept", true);
    String stale = capture(warm, "stale", false);
    for (String key : List.of("old", "kept", "recent", "stale")) {
      Files.setLastModifiedTime(
          dir().resolve(key + WarmImages.RECORD), FileTime.from(before.minusSeconds(1)));
    }
    warm.used("recent");
    Path unrecorded = Files.write(dir().resolve("legacy.save"), new byte[] {1});

    assertEquals(3, warm.prune("kept", before));
    assertNull(warm.find("old"));
    assertFalse(pool.contains(memory("old", old)));
    assertFalse(pool.contains(memory("stale", stale)));
    assertNotNull(warm.find("recent"), "restored from since");
    assertNotNull(warm.find("kept"), "the image just made");
    assertFalse(Files.exists(unrecorded), "a memory image no record names");
    assertEquals(2, warm.layers().size(), "the pruned ones' layers are collectable");
    assertEquals(0, warm.prune("kept", before));

    assertEquals(2, warm.forgetAll());
    assertEquals(Set.of(), warm.layers());
  }

  @Test
  void onThisMachineAKeptCaptureBecomesANewLayerAndTheMemoryMovesIn() throws Exception {
    Layers layers = new Layers(tmp.resolve(".layers"));
    WarmImages warm = new WarmImages(dir(), SandboxDisks.local(layers));
    SandboxRecord rec = new SandboxRecord();
    String layer = warm.begin("k1", rec);
    Path scratch = Files.createDirectories(tmp.resolve("k1.tmp"));
    Files.write(scratch.resolve(SandboxDisks.DISK), new byte[] {1});
    Files.write(scratch.resolve("memory.save"), new byte[] {2});
    warm.keep("k1", scratch, rec, layer);

    WarmImages.Image image = Objects.requireNonNull(warm.find("k1"));
    assertEquals(dir().resolve("k1." + layer + ".save"), image.memory());
    assertTrue(Files.exists(image.memory()));
    assertTrue(Files.exists(layers.path(layer)));
    assertFalse(Files.isWritable(layers.path(layer)) && !isRoot(), "read-only");
    assertEquals(Set.of(layer), warm.layers());
    Path earlier = Files.write(dir().resolve("k1.an-earlier-capture.save"), new byte[] {3});
    Path legacy = Files.write(dir().resolve("k1.save"), new byte[] {4});
    Path earlierLock = Files.createFile(dir().resolve("k1.an-earlier-capture.save.lock"));
    Path ownLock = Files.createFile(dir().resolve("k1." + layer + ".save.lock"));
    assertEquals(2, warm.prune("k1", Instant.now().minusSeconds(3600)));
    assertFalse(Files.exists(earlier) || Files.exists(legacy), "memory no record names goes");
    assertTrue(Files.exists(image.memory()), "the image's own stays");
    assertFalse(Files.exists(earlierLock), "libvirt's lock of a memory file that went");
    assertTrue(Files.exists(ownLock) && Files.exists(warm.restoreLock("k1")), "locks in use stay");

    assertTrue(warm.forget(image));
    assertFalse(Files.exists(image.memory()));
    assertTrue(Files.exists(layers.path(layer)), "left to the collection");
  }

  private static boolean isRoot() {
    return "root".equals(System.getProperty("user.name"));
  }
}
