package dev.agentvm.image;

import dev.agentvm.internal.Hashing;
import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/** Debian packages on the host: apt queries, downloads into the deb cache, extraction. */
final class DebianPackages {
  private DebianPackages() {}

  /** A hash of apt's package lists (names, sizes, times): answers derived from them stay valid. */
  static String aptListsFingerprint() throws IOException {
    StringBuilder fp = new StringBuilder();
    Path lists = Path.of("/var/lib/apt/lists");
    if (Files.isDirectory(lists)) {
      try (Stream<Path> s = Files.list(lists)) {
        for (Path p : s.filter(p -> PathParts.name(p).contains("_Packages")).sorted().toList()) {
          fp.append(PathParts.name(p))
              .append(' ')
              .append(Files.size(p))
              .append(' ')
              .append(Files.getLastModifiedTime(p).toMillis())
              .append('\n');
        }
      }
    }
    return Hashing.sha256Hex(fp.toString().getBytes(StandardCharsets.UTF_8));
  }

  static String kernelPackage() throws IOException {
    String show = aptShow("linux-image-amd64");
    Matcher m =
        Pattern.compile("(?m)^Depends:.*?\\b(linux-image-[0-9][^\\s,(]*-amd64)\\b").matcher(show);
    if (!m.find()) {
      throw new ImageBuildException(
          "cannot find the kernel package linux-image-amd64 depends on:\n" + show);
    }
    return m.group(1);
  }

  static String packageVersion(String pkg) throws IOException {
    Matcher m = Pattern.compile("(?m)^Version:\\s*(\\S+)").matcher(aptShow(pkg));
    if (!m.find()) {
      throw new ImageBuildException("no version for package " + pkg);
    }
    return m.group(1);
  }

  static String aptShow(String pkg) throws IOException {
    try {
      return new String(
          HostCommands.runForBytes(Path.of("/"), "apt-cache", "show", "--no-all-versions", pkg),
          StandardCharsets.UTF_8);
    } catch (ImageBuildException e) {
      throw new ImageBuildException(
          "apt-cache knows no package "
              + pkg
              + ": the package lists are missing or stale; run 'apt-get update' (scripts/setup-host.sh does)",
          e);
    }
  }

  /** Downloads a package into the deb cache once; later builds reuse the file. */
  static Path download(Path debs, String pkg, String version, Consumer<String> progress)
      throws IOException {
    String safeVersion = version.replace(':', '%');
    Path target = debs.resolve(pkg + "_" + safeVersion + ".deb");
    if (Files.isRegularFile(target)) {
      return target;
    }
    Path tmp = Files.createTempDirectory(debs, ".dl-");
    try {
      progress.accept("apt-get download " + pkg + "=" + version);
      HostCommands.run(tmp, "apt-get", "download", "-q", pkg + "=" + version);
      Path got;
      try (Stream<Path> s = Files.list(tmp)) {
        got =
            s.filter(p -> p.toString().endsWith(".deb"))
                .findFirst()
                .orElseThrow(
                    () -> new ImageBuildException("apt-get download " + pkg + " produced no .deb"));
      }
      try {
        Files.move(got, target, StandardCopyOption.ATOMIC_MOVE);
      } catch (FileAlreadyExistsException raced) {
        // another builder downloaded the same file: keep theirs
      }
      return target;
    } finally {
      Trees.delete(tmp);
    }
  }

  static void extract(Path deb, Path into) throws IOException {
    Files.createDirectories(into);
    HostCommands.run(into, "dpkg-deb", "-x", deb.toString(), into.toString());
  }
}
