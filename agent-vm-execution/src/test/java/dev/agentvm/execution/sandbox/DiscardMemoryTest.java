package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

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

    // a pause right after the resume saves anew before the deferred work runs: that stays
    Files.write(dir.resolve("paused.save.part"), new byte[1]);
    Files.write(dir.resolve("paused.save"), new byte[1]);
    later.get(0).run();
    assertEquals(
        List.of("disk.qcow2", "paused.save", "paused.save.part"),
        names(dir),
        "the discarded image and the earlier leftover went, nothing else");
    assertFalse(Files.exists(left));

    // a leftover with nothing to discard now is still swept
    Files.delete(image);
    Files.write(dir.resolve("paused.save.4567" + SandboxDisks.DISCARDED), new byte[1]);
    disks.discardMemory(image, Runnable::run);
    assertEquals(List.of("disk.qcow2", "paused.save.part"), names(dir));

    // a sandbox closed meanwhile (its directory gone) is no error
    try (Stream<Path> s = Files.list(dir)) {
      for (Path f : s.toList()) {
        Files.delete(f);
      }
    }
    Files.delete(dir);
    disks.discardMemory(image, Runnable::run);
    assertFalse(Files.exists(dir));
  }
}
