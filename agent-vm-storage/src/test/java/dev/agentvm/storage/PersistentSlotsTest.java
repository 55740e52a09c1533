package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.LibvirtConnection;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Slots on this host's file system, with their disks made by the real {@code qemu-img} and {@code
 * mkfs.ext4}: one holder at a time, a clear answer when a slot stays held, nothing left held after
 * a failure.
 */
class PersistentSlotsTest {
  private static final long SIZE = 16L << 20;

  @TempDir Path root;

  @Test
  @SuppressWarnings("try") // the slot is closed inside its try on purpose: twice must be harmless
  void aSlotHasOneHolderAtATimeAndKeepsItsDisk() throws Exception {
    PersistentSlots slots = PersistentSlots.at(root);
    assertEquals(List.of(), slots.names(), "no slots yet");
    assertEquals(List.of(), PersistentSlots.at(root.resolve("not-made")).names());
    Path disk;
    try (PersistentSlots.Slot s = slots.acquire("repo-1", SIZE, "task-a", Duration.ZERO)) {
      assertEquals("repo-1", s.name());
      disk = s.disk();
      assertTrue(Files.isWritable(disk), "a slot's disk is written to");
      PersistentSlots.SlotBusyException busy =
          assertThrows(
              PersistentSlots.SlotBusyException.class,
              () -> slots.acquire("repo-1", SIZE, "task-b", Duration.ofMillis(250)));
      assertTrue(busy.holder().contains("task-a"), busy.holder());
      assertTrue(busy.holder().contains(LibvirtConnection.processOwner()), busy.holder());
      assertFalse(busy.getMessage().contains("gone"), "the holder is alive: " + busy.getMessage());
      assertThrows(StorageException.class, () -> slots.delete("repo-1"), "held: not deleted");
      s.close(); // and again by the try: closing twice is harmless
    }
    long created = Files.getLastModifiedTime(disk).toMillis();
    try (PersistentSlots.Slot again = slots.acquire("repo-1", SIZE, "task-b", Duration.ZERO)) {
      assertEquals(disk, again.disk());
      assertEquals(created, Files.getLastModifiedTime(disk).toMillis(), "the disk was remade");
    }
    assertEquals(List.of("repo-1"), slots.names());
    slots.delete("repo-1");
    assertEquals(List.of(), slots.names());
    try (var left = Files.list(root)) {
      assertEquals(List.of(), left.toList(), "a deleted slot left files behind");
    }
  }

  @Test
  void aSlotHeldByAProcessThatIsGoneSaysWhoReleasesIt() throws Exception {
    Files.writeString(
        root.resolve("repo-2" + PersistentSlots.HOLDER),
        "999999999@1970-01-01T00:00:00Z\ntask-x\n",
        StandardCharsets.UTF_8);
    PersistentSlots.SlotBusyException busy =
        assertThrows(
            PersistentSlots.SlotBusyException.class,
            () -> PersistentSlots.at(root).acquire("repo-2", SIZE, "t", Duration.ZERO));
    assertTrue(busy.getMessage().contains("gone"), busy.getMessage());
    assertTrue(busy.holder().contains("task-x"), busy.holder());
    assertEquals(
        List.of("", ""),
        List.of(PersistentSlots.holderOf(root.resolve("missing" + PersistentSlots.HOLDER))));
  }

  @Test
  void badNamesAndAFailedDiskLeaveNothingHeld() throws Exception {
    PersistentSlots slots = PersistentSlots.at(root);
    for (String bad : List.of("", "../x", "Upper", "a/b", "-x")) {
      assertThrows(
          IllegalArgumentException.class, () -> slots.acquire(bad, SIZE, "t", Duration.ZERO), bad);
      assertThrows(IllegalArgumentException.class, () -> slots.delete(bad), bad);
    }
    // a size mkfs cannot format: the error names the slot, and the slot is not left held
    StorageException e =
        assertThrows(StorageException.class, () -> slots.acquire("tiny", 1, "t", Duration.ZERO));
    assertFalse(Files.exists(root.resolve("tiny" + PersistentSlots.HOLDER)), e.getMessage());
    // a root that cannot be a directory
    Path file = Files.writeString(root.resolve("plain-file"), "x");
    StorageException notDir =
        assertThrows(
            StorageException.class,
            () -> PersistentSlots.at(file).acquire("s", SIZE, "t", Duration.ZERO));
    assertTrue(notDir.getMessage().contains("cannot take slot s"), notDir.getMessage());
    assertThrows(StorageException.class, () -> PersistentSlots.at(file).names());
  }
}
