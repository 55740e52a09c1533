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
    MicroImage image = MicroImageBuilder.create().cacheRoot(cache).progress(progress::add).build();
    assertTrue(Files.size(image.kernel()) > 1_000_000, "a kernel: " + image.kernel());
    assertTrue(Files.size(image.initramfs()) > 1_000_000, "an initramfs: " + image.initramfs());
    assertTrue(image.kernelRelease().matches("\\d+\\.\\d+.*"), image.kernelRelease());
    assertTrue(
        progress.stream().anyMatch(l -> l.startsWith("jlink java.base")), progress.toString());
    assertTrue(progress.stream().anyMatch(l -> l.startsWith("built ")), progress.toString());
    try (Stream<Path> left = Files.list(cache.resolve("images"))) {
      assertEquals(
          List.of(image.directory()),
          left.filter(p -> !p.endsWith(".build.lock")).toList(),
          "the build left temporary files");
    }

    progress.clear();
    MicroImage again = MicroImageBuilder.create().cacheRoot(cache).progress(progress::add).build();
    assertEquals(image.directory(), again.directory());
    assertTrue(
        progress.stream().noneMatch(l -> l.startsWith("built ")), "a cache hit: " + progress);
  }
}
