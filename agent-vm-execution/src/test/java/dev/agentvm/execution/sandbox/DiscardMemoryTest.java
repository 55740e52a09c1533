package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A resumed sandbox's memory image leaves its name at once and is deleted later, with any discarded
 * image an earlier process left; the sandbox's other files stay.
 */
class DiscardMemoryTest {
  private static List<String> names(Path dir) throws Exception {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void theImageMovesAsideAtOnceAndGoesWhenTheDeferredWorkRuns(@TempDir Path root) throws Exception {
    SandboxDisks disks = SandboxDisks.local(new Layers(root.resolve(".layers")));
    Path dir = Files.createDirectories(root.resolve("agentvm-test-x"));
    Path image = Files.write(dir.resolve("paused.save"), new byte[4096]);
    Path left = Files.write(dir.resolve("paused.save.0123" + SandboxDisks.DISCARDED), new byte[1]);
    Files.write(dir.resolve("disk.qcow2"), new byte[1]);
    List<Runnable> later = new ArrayList<>();

    disks.discardMemory(image, later::add);
    assertFalse(Files.exists(image), "the name is free before the deferred work");
    assertEquals(3, names(dir).size(), "moved aside, not yet deleted: " + names(dir));
    assertEquals(1, later.size());

    later.get(0).run();
    assertEquals(List.of("disk.qcow2"), names(dir), "the image and the earlier leftover went");
    assertFalse(Files.exists(left));

    // nothing to discard: still a sweep, no failure; and a closed sandbox's directory is no error
    disks.discardMemory(image, Runnable::run);
    Files.delete(dir.resolve("disk.qcow2"));
    Files.delete(dir);
    disks.discardMemory(image, Runnable::run);
    assertTrue(Files.isDirectory(root));
  }
}
