package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Warm memory images unused for a week go when another is made; the rest of the cache stays. */
class WarmPruneTest {
  @Test
  void onlyOtherKeysImagesUnusedForAWeekAreDeleted(@TempDir Path warm) throws Exception {
    Instant now = Instant.parse("2026-12-01T12:00:00Z");
    Path old = image(warm, "aaaa", now.minus(Sandboxes.WARM_UNUSED).minusSeconds(60));
    Path recent = image(warm, "bbbb", now.minus(Sandboxes.WARM_UNUSED).plusSeconds(60));
    Path kept = image(warm, "cccc", now.minus(Sandboxes.WARM_UNUSED).minusSeconds(60));
    Path lock = Files.createFile(warm.resolve("aaaa.lock"));
    Path notAnImage = Files.createFile(warm.resolve("dddd.tmp"));
    Files.setLastModifiedTime(notAnImage, FileTime.from(Instant.EPOCH));

    assertEquals(1, Sandboxes.pruneWarm(warm, "cccc", now));
    assertFalse(Files.exists(old), "unused for a week");
    assertTrue(Files.exists(recent), "restored within the week");
    assertTrue(Files.exists(kept), "the image just made");
    assertTrue(Files.exists(lock) && Files.exists(notAnImage), "only memory images go");
    assertEquals(0, Sandboxes.pruneWarm(warm, "cccc", now), "nothing more to delete");
  }

  private static Path image(Path dir, String key, Instant written) throws Exception {
    Path p = Files.write(dir.resolve(key + ".save"), new byte[] {1});
    Files.setLastModifiedTime(p, FileTime.from(written));
    return p;
  }
}
