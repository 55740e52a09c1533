package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TreesTest {
  @TempDir Path tmp;

  @Test
  void deletesTreeWithoutFollowingLinks() throws Exception {
    Path outside = Files.createDirectories(tmp.resolve("outside"));
    Files.writeString(outside.resolve("keep.txt"), "kept");
    Path root = Files.createDirectories(tmp.resolve("root/a/b/c"));
    Files.writeString(root.resolve("f.txt"), "x");
    Files.createSymbolicLink(tmp.resolve("root/a/link"), outside);
    Files.createSymbolicLink(tmp.resolve("root/dangling"), tmp.resolve("nowhere"));

    Trees.delete(tmp.resolve("root"));

    assertFalse(Files.exists(tmp.resolve("root")));
    assertTrue(Files.exists(outside.resolve("keep.txt")), "a link's target must survive");
  }

  @Test
  void missingRootAndQuietVariant() throws Exception {
    Trees.delete(tmp.resolve("absent"));
    Path f = Files.writeString(tmp.resolve("file"), "x");
    assertNull(Trees.deleteQuietly(f));
    assertFalse(Files.exists(f));
  }

  @Test
  void deepTreeIsRemoved() throws Exception {
    Path p = tmp.resolve("deep");
    for (int i = 0; i < 200; i++) {
      p = p.resolve("d" + i);
    }
    Files.createDirectories(p);
    Files.writeString(p.resolve("leaf"), "x");
    Trees.delete(tmp.resolve("deep"));
    assertFalse(Files.exists(tmp.resolve("deep")));
  }
}
