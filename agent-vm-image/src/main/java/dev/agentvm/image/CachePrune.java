package dev.agentvm.image;

import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;

/**
 * Frees the image cache of what is no longer needed: every micro image but the newest, every
 * package disk but the newest of each package set, and (when asked) the downloaded Debian packages.
 * An image a paused sandbox or warm image still needs (pinned) is always kept. Runs under the
 * cache's build lock, so a build under way is never touched.
 */
public final class CachePrune {
  private CachePrune() {}

  /** One thing removed (or, in a dry run, that would be). */
  public record Removed(Path path, String kind, long bytes) {}

  /**
   * What a prune did.
   *
   * @param removed what was removed, with its size on disk
   * @param pinned old images kept because a paused sandbox needs them
   */
  public record Report(List<Removed> removed, List<Path> pinned) {
    public Report {
      removed = List.copyOf(removed);
      pinned = List.copyOf(pinned);
    }

    /** Bytes freed (or that would be). */
    public long bytesFreed() {
      return removed.stream().mapToLong(Removed::bytes).sum();
    }
  }

  /**
   * Prunes the cache under {@code cacheRoot}.
   *
   * @param dryRun only report what would go
   * @param downloads also remove the downloaded Debian packages (fetched again when needed)
   */
  public static Report prune(Path cacheRoot, boolean dryRun, boolean downloads) throws IOException {
    Path images = cacheRoot.resolve("images");
    List<Removed> removed = new ArrayList<>();
    List<Path> pinned = new ArrayList<>();
    if (Files.isDirectory(images)) {
      ImageCache.withBuildLock(
          images,
          () -> {
            Map<String, List<Path>> groups = new LinkedHashMap<>();
            try (Stream<Path> s = Files.list(images)) {
              for (Path p :
                  s.filter(p -> Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS))
                      .sorted()
                      .toList()) {
                String name = PathParts.name(p);
                if (name.startsWith("micro-")) {
                  groups.computeIfAbsent("micro image", k -> new ArrayList<>()).add(p);
                } else if (name.startsWith("packages-")) {
                  groups
                      .computeIfAbsent("package disk " + packagesOf(p), k -> new ArrayList<>())
                      .add(p);
                }
              }
            }
            for (Map.Entry<String, List<Path>> g : groups.entrySet()) {
              List<Path> newestFirst =
                  g.getValue().stream()
                      .sorted(Comparator.comparing(CachePrune::modified).reversed())
                      .toList();
              for (Path old : newestFirst.subList(1, newestFirst.size())) {
                if (ImagePins.pinned(old)) {
                  pinned.add(old);
                  continue;
                }
                String kind = g.getKey().startsWith("micro") ? "micro image" : "package disk";
                removed.add(new Removed(old, kind, sizeOnDisk(old)));
                if (!dryRun) {
                  Trees.delete(old);
                }
              }
            }
            return Boolean.TRUE;
          });
    }
    Path debs = cacheRoot.resolve("debs");
    if (downloads && Files.isDirectory(debs, LinkOption.NOFOLLOW_LINKS)) {
      Files.createDirectories(images);
      // under the build lock: a build extracts the packages it downloaded
      ImageCache.withBuildLock(
          images,
          () -> {
            try (Stream<Path> s = Files.list(debs)) {
              for (Path deb :
                  s.filter(p -> PathParts.name(p).endsWith(".deb"))
                      .filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS))
                      .sorted()
                      .toList()) {
                removed.add(new Removed(deb, "download", sizeOnDisk(deb)));
                if (!dryRun) {
                  Files.deleteIfExists(deb);
                }
              }
            }
            return Boolean.TRUE;
          });
    }
    return new Report(removed, pinned);
  }

  /** The package set a package disk was built for, from its manifest ("" if unreadable). */
  private static String packagesOf(Path dir) {
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(dir.resolve("manifest.properties"))) {
      p.load(in);
    } catch (IOException e) {
      return "";
    }
    return p.getProperty("packages", "");
  }

  private static FileTime modified(Path p) {
    try {
      return Files.getLastModifiedTime(p, LinkOption.NOFOLLOW_LINKS);
    } catch (IOException e) {
      return FileTime.fromMillis(0);
    }
  }

  /** Bytes a file or tree takes (hard links once, rounded to 4 KiB blocks; links not followed). */
  public static long sizeOnDisk(Path root) throws IOException {
    return Files.isDirectory(root, LinkOption.NOFOLLOW_LINKS)
        ? PackageDiskBuilder.treeSize(root)
        : (Files.size(root) + 4095) / 4096 * 4096;
  }
}
