package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.AgentVmPaths;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The micro image built for real, every run, into a cache of its own (the shared cache makes the
 * build a cache hit on every run after a machine's first): kernel and busybox unpacked from their
 * Debian packages (downloaded into the shared deb cache, so once per machine), modules ordered,
 * java.base jlinked, the initramfs written; then the same inputs again are a cache hit.
 */
class MicroImageBuildIT {
  @TempDir Path cache;

  @Test
  void buildsTheImageOnceAndReusesIt() throws Exception {
    Path debs = Files.createDirectories(AgentVmPaths.cacheRoot().resolve("debs"));
    Files.createSymbolicLink(cache.resolve("debs"), debs);
    List<String> progress = new ArrayList<>();
    List<Progress.Step> steps = new ArrayList<>();
    MicroImage image =
        MicroImageBuilder.create()
            .cacheRoot(cache)
            .progress(
                s -> {
                  steps.add(s);
                  progress.add(s.toString());
                })
            .build();
    // counted steps that never go back, the last one done
    for (int i = 1; i < steps.size(); i++) {
      assertTrue(steps.get(i).done() >= steps.get(i - 1).done(), steps.toString());
    }
    Progress.Step last = steps.get(steps.size() - 1);
    assertTrue(last.finished() && last.total() == MicroImageBuilder.BUILD_STEPS, last.toString());
    assertTrue(Files.size(image.kernel()) > 1_000_000, "a kernel: " + image.kernel());
    assertTrue(Files.size(image.initramfs()) > 1_000_000, "an initramfs: " + image.initramfs());
    assertTrue(image.kernelRelease().matches("\\d+\\.\\d+.*"), image.kernelRelease());
    assertTrue(progress.stream().anyMatch(l -> l.contains("jlink java.base")), progress.toString());
    assertTrue(
        progress.stream().anyMatch(l -> l.contains("the agent's native library")),
        "compiled with this machine's cc: " + progress);
    assertTrue(progress.stream().anyMatch(l -> l.contains(": built ")), progress.toString());
    try (Stream<Path> left = Files.list(cache.resolve("images"))) {
      assertEquals(
          List.of(image.directory()),
          left.filter(p -> !p.endsWith(".build.lock")).toList(),
          "the build left temporary files");
    }

    progress.clear();
    MicroImage again =
        MicroImageBuilder.create().cacheRoot(cache).progress(Progress.lines(progress::add)).build();
    assertEquals(image.directory(), again.directory());
    assertTrue(
        progress.stream().noneMatch(l -> l.contains(": built ")), "a cache hit: " + progress);
  }
}
