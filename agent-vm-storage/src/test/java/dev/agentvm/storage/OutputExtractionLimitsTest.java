package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Extraction limits that a hostile guest must not move, checked on the host side of a workspace
 * (the guest's part, writing the files through 9p, is the same bytes in the same directory).
 */
class OutputExtractionLimitsTest {
  @TempDir Path tmp;

  @Test
  void aFileBiggerThanItsBudgetIsNeverReadWhole() throws Exception {
    Path huge = tmp.resolve("huge");
    try (RandomAccessFile f = new RandomAccessFile(huge.toFile(), "rw")) {
      f.setLength(64L << 30); // sparse: 64 GiB that a bounded copy must not read
    }
    Path to = tmp.resolve("copy");
    long t0 = System.nanoTime();
    assertThrows(OutputLimitException.class, () -> FilesystemShare.copy(huge, to, "huge", 1 << 20));
    assertTrue(System.nanoTime() - t0 < 10_000_000_000L, "stopped at the budget");
    assertTrue(Files.size(to) <= 1 << 20, "never more than the budget written");
  }

  @Test
  void copyWithinBudgetKeepsContentAndHash() throws Exception {
    Path f = Files.writeString(tmp.resolve("f"), "hello");
    ExtractedOutput.File c = FilesystemShare.copy(f, tmp.resolve("g"), "f", 5);
    assertEquals(5, c.size());
    assertEquals("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", c.sha256());
    assertThrows(
        OutputLimitException.class, () -> FilesystemShare.copy(f, tmp.resolve("h"), "f", 4));
  }

  @Test
  void everyEntryCountsAndDepthIsBounded() throws Exception {
    try (FilesystemShare ws = FilesystemShare.create(tmp.resolve("ws"), "entries")) {
      for (int i = 0; i < 50; i++) {
        Files.createDirectory(ws.output().resolve("d" + i)); // directories only: no files at all
      }
      OutputLimits few = new OutputLimits(10, 1 << 20, 1 << 20, 20, 8);
      assertThrows(OutputLimitException.class, () -> ws.extractOutput(tmp.resolve("o1"), few));
      assertFalse(Files.exists(tmp.resolve("o1")), "nothing extracted");
    }
    try (FilesystemShare ws = FilesystemShare.create(tmp.resolve("ws"), "deep")) {
      Path p = ws.output();
      for (int i = 0; i < 10; i++) {
        p = Files.createDirectory(p.resolve("d"));
      }
      OutputLimits shallow = new OutputLimits(10, 1 << 20, 1 << 20, 1000, 8);
      assertThrows(OutputLimitException.class, () -> ws.extractOutput(tmp.resolve("o2"), shallow));
      assertFalse(Files.exists(tmp.resolve("o2")));
    }
  }

  @Test
  void skippedNamesAreCapped() throws Exception {
    try (FilesystemShare ws = FilesystemShare.create(tmp.resolve("ws"), "links")) {
      for (int i = 0; i < 150; i++) {
        Files.createSymbolicLink(ws.output().resolve("l" + i), Path.of("/etc/passwd"));
      }
      Files.writeString(ws.output().resolve("real.txt"), "x");
      ExtractedOutput out = ws.extractOutput(tmp.resolve("o3"), OutputLimits.DEFAULT);
      assertEquals(
          List.of("real.txt"), out.files().stream().map(ExtractedOutput.File::path).toList());
      assertEquals(FilesystemShare.MAX_SKIPPED_NAMED + 1, out.skipped().size());
      assertTrue(out.skipped().get(out.skipped().size() - 1).contains("50 more"));
    }
  }
}
