package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DiskImagesTest {

  /**
   * A raw disk whose guest wrote a qcow2 header naming a host file as backing: read as raw, as the
   * template says, it is a plain raw image; an overlay on it reaches nothing else.
   */
  @Test
  void aRawDiskIsNeverTakenForTheQcow2HeaderItsGuestWrote(@TempDir Path dir) throws Exception {
    Path secret = dir.resolve("host-secret");
    Files.writeString(secret, "not for guests");
    Path forged = dir.resolve("forged.qcow2");
    Process p =
        new ProcessBuilder(
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                secret.toString(),
                forged.toString(),
                "1M")
            .inheritIO()
            .start();
    assertTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0);
    Path rawDisk = dir.resolve("disk.raw"); // the bytes of a raw disk the guest wrote
    Files.copy(forged, rawDisk, StandardCopyOption.REPLACE_EXISTING);

    assertEquals(
        Optional.of(secret), DiskImages.info(rawDisk).backingFile(), "probing believes it");
    DiskImages.Info asRaw = DiskImages.info(rawDisk, "raw");
    assertEquals("raw", asRaw.format());
    assertEquals(Optional.empty(), asRaw.backingFile());

    Path overlay = DiskImages.createOverlay(rawDisk, "raw", dir.resolve("clone.qcow2"), 0);
    DiskImages.Info o = DiskImages.info(overlay, "qcow2");
    assertEquals(Optional.of(rawDisk), o.backingFile());
    assertTrue(
        o.virtualSize() >= Files.size(rawDisk) && o.virtualSize() < (1 << 20),
        "the raw file itself (rounded to sectors), not the forged 1 MiB: " + o.virtualSize());
  }

  @Test
  void missingOrExistingFilesAreRefusedBeforeAToolRuns(@TempDir Path dir) throws Exception {
    org.junit.jupiter.api.Assertions.assertThrows(
        StorageException.class, () -> DiskImages.info(dir.resolve("missing.qcow2")));
    Path there = Files.writeString(dir.resolve("there.qcow2"), "x");
    org.junit.jupiter.api.Assertions.assertThrows(
        StorageException.class, () -> DiskImages.createExt4(there, 16L << 20, null));
  }
}
