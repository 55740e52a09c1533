package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.AgentVmPaths;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A package disk built for real, every run, into a cache of its own (the shared cache would make
 * the build a cache hit): apt resolves the closure, the packages are downloaded (into the shared
 * deb cache, so once per machine) and unpacked, {@code /bin} and {@code /lib} are folded into
 * {@code /usr}, busybox's links are added, and mkfs.ext4 writes the read-only disk. Its contents
 * are read back with debugfs, without mounting it.
 */
class PackageDiskBuildIT {
  @TempDir Path cache;
  private final List<String> progress = new ArrayList<>();
  private Path busyboxDeb;

  @BeforeEach
  void shareTheDebCache() throws Exception {
    Path debs = Files.createDirectories(AgentVmPaths.cacheRoot().resolve("debs"));
    Files.createSymbolicLink(cache.resolve("debs"), debs);
    busyboxDeb =
        DebianPackages.download(
            debs, "busybox-static", DebianPackages.packageVersion("busybox-static"), progress::add);
  }

  private static String debugfs(Path disk, String request) throws Exception {
    return new String(
        HostCommands.runForBytes(disk.getParent(), "debugfs", "-R", request, disk.toString()),
        StandardCharsets.UTF_8);
  }

  @Test
  void buildsAReadOnlyUsrDiskOnceAndReusesIt() throws Exception {
    List<Progress.Step> steps = new ArrayList<>();
    PackageDiskBuilder builder = new PackageDiskBuilder(cache, steps::add);
    Path dir = builder.build(List.of("jq"), busyboxDeb);
    // counted steps, one per package, never backwards, ending done
    Progress.Step last = steps.get(steps.size() - 1);
    assertTrue(last.finished() && last.detail().startsWith("built "), steps.toString());
    for (int i = 1; i < steps.size(); i++) {
      assertTrue(steps.get(i).done() >= steps.get(i - 1).done(), steps.toString());
      assertTrue(steps.get(i).done() <= steps.get(i).total(), steps.toString());
    }

    Properties manifest = new Properties();
    try (InputStream in = Files.newInputStream(dir.resolve("manifest.properties"))) {
      manifest.load(in);
    }
    assertEquals("jq", manifest.getProperty("packages"));
    String closure = manifest.getProperty("closure");
    for (String pkg : List.of("jq=", "libjq1=", "libonig5=", "libc6=")) {
      assertTrue(closure.contains(pkg), pkg + " missing from the closure: " + closure);
    }
    Path disk = dir.resolve("usr.ext4");
    String label =
        new String(
            HostCommands.runForBytes(dir, "e2label", disk.toString()), StandardCharsets.UTF_8);
    assertEquals(PackageDiskBuilder.LABEL, label.trim());
    // the disk is /usr: jq in bin, libc (shipped in /lib by Debian 12) folded into lib
    assertTrue(debugfs(disk, "stat /bin/jq").contains("Type: regular"), "no /bin/jq");
    assertTrue(
        debugfs(disk, "ls /lib/x86_64-linux-gnu").contains("libc.so.6"), "libc not under /usr/lib");
    assertTrue(debugfs(disk, "stat /bin/env").contains("Type: symlink"), "no busybox link");
    assertTrue(!debugfs(disk, "ls -p /share").contains("/doc/"), "documentation kept");
    try (Stream<Path> left = Files.list(cache.resolve("images"))) {
      assertEquals(
          List.of(dir),
          left.filter(p -> !p.endsWith(".build.lock")).toList(),
          "the build left temporary files");
    }

    // the same packages again: the cached disk, and apt's closure from its memo
    progress.clear();
    long built = Files.getLastModifiedTime(disk).toMillis();
    assertEquals(
        dir,
        new PackageDiskBuilder(cache, Progress.lines(progress::add))
            .build(List.of("jq"), busyboxDeb));
    assertEquals(built, Files.getLastModifiedTime(disk).toMillis());
    assertEquals(List.of(), progress, "nothing was to be built");
  }

  @Test
  void packagesThatCannotBeOnADiskAreRefusedBeforeAnyWork() throws Exception {
    PackageDiskBuilder builder = new PackageDiskBuilder(cache, Progress.lines(progress::add));
    assertThrows(
        IllegalArgumentException.class, () -> builder.build(List.of("Bad Name"), busyboxDeb));
    assertThrows(
        IllegalArgumentException.class,
        () -> builder.build(List.of(PackageDiskBuilder.EXCLUDED.get(0)), busyboxDeb));
    ImageBuildException unknown =
        assertThrows(
            ImageBuildException.class,
            () -> builder.build(List.of("agentvm-no-such-package"), busyboxDeb));
    assertTrue(unknown.getMessage().contains("apt cannot resolve"), unknown.getMessage());
    assertTrue(Files.notExists(cache.resolve("images")), "a refused build made an image directory");
  }
}
