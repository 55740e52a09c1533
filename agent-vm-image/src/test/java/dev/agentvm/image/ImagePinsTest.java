package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Pruning keeps an old image while a holder (a paused sandbox) still needs it, and no longer. */
class ImagePinsTest {
  @TempDir Path cache;

  private Path image(String name, long age) throws Exception {
    Path d = Files.createDirectories(cache.resolve("images").resolve(name));
    Files.writeString(d.resolve("kernel"), "k");
    Files.setLastModifiedTime(d, FileTime.fromMillis(System.currentTimeMillis() - age * 60_000));
    return d;
  }

  @Test
  void aPinnedImageOutlivesPruningUntilItsHolderIsGone() throws Exception {
    Path oldest = image("micro-a", 40);
    image("micro-b", 30);
    image("micro-c", 20);
    Path current = image("micro-d", 10);
    Path sandbox = Files.createDirectories(cache.resolve("sandboxes/sbx-1"));
    ImagePins.pin(oldest.resolve("kernel"), sandbox);
    ImagePins.pin(oldest.resolve("kernel"), sandbox); // twice is one pin
    assertEquals(
        FileTime.fromMillis(System.currentTimeMillis() - 2_400_000).toMillis() / 60_000,
        Files.getLastModifiedTime(oldest).toMillis() / 60_000,
        "a pin does not make an image look new to pruning");
    List<String> said = new ArrayList<>();

    ImageCache.pruneOld(cache.resolve("images"), "micro-", current, 1, said::add);
    assertTrue(Files.exists(oldest), "pinned by a sandbox that exists: " + said);
    assertFalse(Files.exists(cache.resolve("images/micro-b")), "unpinned and beyond the kept one");
    assertTrue(said.stream().anyMatch(l -> l.contains("keeping old image")), said.toString());

    Files.delete(sandbox); // the sandbox was closed or reaped without unpinning
    ImageCache.pruneOld(cache.resolve("images"), "micro-", current, 1, said::add);
    assertFalse(Files.exists(oldest), "its holder is gone: " + said);
    assertTrue(Files.exists(current));
    assertEquals(List.of("micro-c", "micro-d"), names());
  }

  @Test
  void unpinningAndSweepingKeepThePinsOfTheNewestImageFew() throws Exception {
    Path current = image("micro-new", 1);
    Path kernel = current.resolve("kernel");
    Path live = Files.createDirectories(cache.resolve("sandboxes/live"));
    ImagePins.pin(kernel, live);
    Path closed = Files.createDirectories(cache.resolve("sandboxes/closed"));
    ImagePins.pin(kernel, closed);
    ImagePins.unpin(kernel, closed);
    assertEquals(1, pins(current), "an unpinned holder leaves no pin");
    for (int i = 0; i < ImagePins.SWEEP_AT + 10; i++) {
      ImagePins.pin(kernel, cache.resolve("sandboxes/gone-" + i)); // holders that never existed
    }
    assertTrue(pins(current) <= ImagePins.SWEEP_AT + 1, "swept: " + pins(current));
    assertTrue(ImagePins.pinned(current), "the live holder's pin survived the sweep");
  }

  private static long pins(Path image) throws Exception {
    try (var s = Files.list(image.resolve(ImagePins.DIR))) {
      return s.count();
    }
  }

  @Test
  void filesOutsideAnImageDirectoryAreNotPinned() throws Exception {
    Path elsewhere = Files.createDirectories(cache.resolve("somewhere"));
    ImagePins.pin(elsewhere.resolve("kernel"), cache);
    assertFalse(Files.exists(elsewhere.resolve(ImagePins.DIR)));
    assertFalse(ImagePins.pinned(elsewhere));
    assertTrue(ImagePins.imageDir(cache.resolve("images/packages-x/usr.ext4")).isPresent());
    assertFalse(ImagePins.imageDir(cache.resolve("images/other/kernel")).isPresent());
  }

  private List<String> names() throws Exception {
    try (var s = Files.list(cache.resolve("images"))) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }
}
