package dev.agentvm.image;

import dev.agentvm.internal.Hashing;
import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Builds the package disk of an image flavour: Debian packages with every package they depend on,
 * unpacked into one merged {@code /usr} tree and written into a read-only ext4 filesystem that the
 * micro image's {@code /init} mounts on {@code /usr}.
 *
 * <p>A disk rather than more initramfs: the initramfs lives in guest RAM (python3 and git would
 * double it), whereas a disk costs page cache only for what is read, and every clone of a memory
 * image shares the one file.
 *
 * <p>The dependency closure is apt's own answer ({@code apt-get -s install} against an empty
 * package database), with the packages in {@link #EXCLUDED} marked installed so that apt neither
 * pulls them nor what only they need: perl (git's local commands do not use it), manuals, and
 * dpkg's own tools.
 */
final class PackageDiskBuilder {
  /** Bump when the disk layout changes. */
  static final String FORMAT = "1";

  /** Packages never put on a package disk, nor followed for their dependencies. */
  static final List<String> EXCLUDED =
      List.of("perl", "perl-base", "liberror-perl", "git-man", "dpkg", "tar", "debconf");

  /** Top-level directories folded into {@code usr/} (the guest has only {@code /usr} from here). */
  private static final List<String> MERGED = List.of("bin", "sbin", "lib", "lib64");

  /** Trees of no use to an agent; removed to keep the disk small. */
  private static final List<String> DROPPED =
      List.of(
          "usr/share/doc",
          "usr/share/man",
          "usr/share/info",
          "usr/share/lintian",
          "usr/share/locale",
          "usr/share/bug");

  static final String LABEL = "agentvm-usr";

  private static final Pattern INST =
      Pattern.compile("(?m)^Inst (\\S+) (?:\\[[^]]*\\] )?\\((\\S+)");

  private final Path cacheRoot;
  private final Progress progress;
  private static final String TASK = "package disk";

  /** Steps of a build: one per package extracted, then the disk made, then done. */
  private long done;

  private long total;

  PackageDiskBuilder(Path cacheRoot, Progress progress) {
    this.cacheRoot = cacheRoot;
    this.progress = progress;
  }

  private void step(String detail) {
    done = Math.min(done + 1, Math.max(0, total - 1));
    say(detail);
  }

  private void say(String detail) {
    Progress.report(progress, new Progress.Step(TASK, done, total, detail));
  }

  /**
   * Returns the directory holding {@code usr.ext4} and its manifest for these packages, building it
   * first if no cached one matches.
   */
  Path build(List<String> packages, Path busyboxDeb) throws IOException {
    for (String p : packages) {
      if (!p.matches("[a-z0-9][a-z0-9+.-]*")) {
        throw new IllegalArgumentException("not a Debian package name: '" + p + "'");
      }
      if (EXCLUDED.contains(p)) {
        throw new IllegalArgumentException(p + " cannot be put on a package disk (excluded)");
      }
    }
    Map<String, String> closure = resolve(packages);
    String key =
        Hashing.sha256Hex(
                String.join(
                        "\n",
                        FORMAT,
                        String.join(",", packages),
                        closure.toString(),
                        PathParts.name(busyboxDeb))
                    .getBytes(StandardCharsets.UTF_8))
            .substring(0, 16);
    Path images = cacheRoot.resolve("images");
    Files.createDirectories(images);
    Path dir = images.resolve("packages-" + key);
    if (Files.isRegularFile(dir.resolve("manifest.properties"))) {
      return dir;
    }
    return ImageCache.withBuildLock(
        images,
        () -> {
          if (Files.isRegularFile(dir.resolve("manifest.properties"))) {
            return dir; // another builder finished while we waited
          }
          long t0 = System.nanoTime();
          ImageCache.buildAtomically(
              images,
              ".tmp-packages-",
              dir,
              "the package disk",
              tmp -> buildInto(tmp, packages, closure, busyboxDeb));
          prune(images, dir);
          Progress.report(
              progress,
              new Progress.Step(
                  TASK,
                  total,
                  total,
                  String.format(
                      "built %s (%s): %.1f MB in %.1f s",
                      dir,
                      String.join(" ", packages),
                      Files.size(dir.resolve("usr.ext4")) / 1e6,
                      (System.nanoTime() - t0) / 1e9)));
          return dir;
        });
  }

  /**
   * Package name to version for everything the packages need, remembered against apt's lists (each
   * apt call takes over a second here).
   */
  Map<String, String> resolve(List<String> packages) throws IOException {
    String lists = DebianPackages.aptListsFingerprint();
    // one file per package set, valid while its "lists" matches: no pile-up as apt's lists change
    String memoKey =
        Hashing.sha256Hex((FORMAT + "\n" + packages + EXCLUDED).getBytes(StandardCharsets.UTF_8))
            .substring(0, 16);
    Path memo = cacheRoot.resolve("apt-closure-" + memoKey + ".properties");
    if (Files.isRegularFile(memo)) {
      Properties p = new Properties();
      try (InputStream in = Files.newInputStream(memo)) {
        p.load(in);
      }
      if (!lists.equals(p.getProperty("lists"))) {
        p.clear(); // apt's lists changed since: resolve again
      }
      Map<String, String> m = new LinkedHashMap<>();
      for (String line : p.getProperty("closure", "").split(",", -1)) {
        if (!line.isEmpty()) {
          int eq = line.indexOf('=');
          m.put(line.substring(0, eq), line.substring(eq + 1));
        }
      }
      if (!m.isEmpty()) {
        return m;
      }
    }
    Path status = Files.createTempFile(cacheRoot, ".fake-status-", "");
    try {
      Files.writeString(status, excludedStatus());
      List<String> cmd =
          new ArrayList<>(
              List.of(
                  "apt-get",
                  "-s",
                  "-q",
                  "-o",
                  "Dir::State::status=" + status,
                  "-o",
                  "Debug::NoLocking=1",
                  "install",
                  "--no-install-recommends"));
      cmd.addAll(packages);
      String out;
      try {
        out =
            new String(
                HostCommands.runForBytes(cacheRoot, cmd.toArray(String[]::new)),
                StandardCharsets.UTF_8);
      } catch (ImageBuildException e) {
        throw new ImageBuildException(
            "apt cannot resolve " + packages + " (run 'apt-get update'?): " + e.getMessage(), e);
      }
      Map<String, String> closure = parseSimulation(out);
      if (closure.isEmpty()) {
        throw new ImageBuildException("apt resolved " + packages + " to nothing:\n" + out);
      }
      Properties p = new Properties();
      StringBuilder b = new StringBuilder();
      closure.forEach((k, v) -> b.append(k).append('=').append(v).append(','));
      p.setProperty("closure", b.toString());
      p.setProperty("lists", lists);
      Path tmp = Files.createTempFile(cacheRoot, ".apt-closure", ".tmp");
      try (OutputStream o = Files.newOutputStream(tmp)) {
        p.store(o, "apt's closure of " + packages + ", valid while apt's lists are unchanged");
      }
      Files.move(tmp, memo, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      return closure;
    } finally {
      Files.deleteIfExists(status);
    }
  }

  /** The {@code Inst} lines of an {@code apt-get -s} run, minus excluded packages, sorted. */
  static Map<String, String> parseSimulation(String aptOutput) {
    Map<String, String> m = new java.util.TreeMap<>();
    Matcher x = INST.matcher(aptOutput);
    while (x.find()) {
      String name = x.group(1).replaceAll(":amd64$", "");
      if (!EXCLUDED.contains(name)) {
        m.put(name, x.group(2));
      }
    }
    return m;
  }

  /** A dpkg status file that says the excluded packages are installed, at their candidates. */
  private static String excludedStatus() throws IOException {
    String shown;
    try {
      // one apt-cache call for all (each costs over a second here)
      List<String> cmd = new ArrayList<>(List.of("apt-cache", "show", "--no-all-versions"));
      cmd.addAll(EXCLUDED);
      shown =
          new String(
              HostCommands.runForBytes(Path.of("/"), cmd.toArray(String[]::new)),
              StandardCharsets.UTF_8);
    } catch (ImageBuildException unknownName) {
      // some excluded package is not in this distribution: ask one by one, skipping those
      StringBuilder each = new StringBuilder();
      for (String pkg : EXCLUDED) {
        try {
          each.append(DebianPackages.aptShow(pkg)).append("\n\n");
        } catch (ImageBuildException e) {
          // nothing to exclude
        }
      }
      shown = each.toString();
    }
    return statusOf(shown);
  }

  /** dpkg status stanzas, "installed", for the packages in {@code apt-cache show} output. */
  static String statusOf(String aptCacheShow) {
    StringBuilder status = new StringBuilder();
    for (String stanza : aptCacheShow.split("\n\\s*\n", -1)) {
      Matcher n = Pattern.compile("(?m)^Package:\\s*(\\S+)").matcher(stanza);
      Matcher v = Pattern.compile("(?m)^Version:\\s*(\\S+)").matcher(stanza);
      Matcher a = Pattern.compile("(?m)^Architecture:\\s*(\\S+)").matcher(stanza);
      if (n.find() && v.find() && a.find()) {
        status
            .append("Package: ")
            .append(n.group(1))
            .append("\nStatus: install ok installed\nVersion: ")
            .append(v.group(1))
            .append("\nArchitecture: ")
            .append(a.group(1))
            .append("\n\n");
      }
    }
    return status.toString();
  }

  private void buildInto(
      Path tmp, List<String> packages, Map<String, String> closure, Path busyboxDeb)
      throws IOException {
    Path debs = cacheRoot.resolve("debs");
    Files.createDirectories(debs);
    Path root = tmp.resolve("root");
    Files.createDirectories(root.resolve("usr"));
    done = 0;
    total = closure.size() + 2L;
    say(closure.size() + " packages for " + packages);
    for (Map.Entry<String, String> e : closure.entrySet()) {
      DebianPackages.extract(
          DebianPackages.download(debs, e.getKey(), e.getValue(), this::say), root);
      step(e.getKey() + " " + e.getValue());
    }
    for (String top : MERGED) {
      mergeInto(
          root.resolve(top), root.resolve("usr").resolve(top.equals("lib64") ? "lib64" : top));
    }
    for (String d : DROPPED) {
      Trees.delete(root.resolve(d));
    }
    precompilePython(root.resolve("usr"), tmp);
    addBusyboxLinks(root.resolve("usr"), busyboxDeb, tmp);

    Path usr = root.resolve("usr");
    long bytes = treeSize(usr);
    long inodes;
    try (Stream<Path> s = Files.walk(usr)) {
      inodes = s.count();
    }
    // room for ext4's metadata; the disk is mounted read-only, so no free space is needed beyond it
    long sizeMb = bytes / (1 << 20) * 115 / 100 + 16;
    Path disk = tmp.resolve("usr.ext4");
    step("usr.ext4, " + sizeMb + " MB");
    HostCommands.run(
        tmp,
        "mkfs.ext4",
        "-q",
        "-F",
        "-L",
        LABEL,
        "-m",
        "0",
        "-N",
        Long.toString(inodes + 1024),
        "-O",
        "^has_journal",
        "-E",
        "root_owner=0:0",
        "-d",
        usr.toString(),
        disk.toString(),
        sizeMb + "M");
    Trees.delete(root);
    Properties manifest = new Properties();
    manifest.setProperty("packages", String.join(" ", packages));
    StringBuilder b = new StringBuilder();
    closure.forEach((k, v) -> b.append(k).append('=').append(v).append(' '));
    manifest.setProperty("closure", b.toString().trim());
    manifest.setProperty("unpackedBytes", Long.toString(bytes));
    manifest.setProperty("builtAt", Instant.now().toString());
    try (OutputStream o = Files.newOutputStream(tmp.resolve("manifest.properties"))) {
      manifest.store(o, "agent-vm package disk, mounted read-only on /usr");
    }
    for (String f : List.of("usr.ext4", "manifest.properties")) {
      ImageCache.publishFile(tmp.resolve(f));
    }
  }

  /**
   * Moves {@code from} into {@code into} entry by entry (Debian 12 packages are only partly
   * usr-merged); what exists in both is merged recursively, and the emptied source removed.
   */
  static void mergeInto(Path from, Path into) throws IOException {
    if (!Files.exists(from, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    if (Files.isSymbolicLink(from)) {
      Files.delete(from); // e.g. a /lib64 -> usr/lib64 link of a merged package
      return;
    }
    Files.createDirectories(into);
    List<Path> entries;
    try (Stream<Path> s = Files.list(from)) {
      entries = s.toList();
    }
    for (Path e : entries) {
      Path target = into.resolve(PathParts.name(e));
      if (Files.isDirectory(e, LinkOption.NOFOLLOW_LINKS)
          && Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
        mergeInto(e, target);
      } else if (!Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
        Files.move(e, target);
      } else {
        Files.delete(e); // the same file under both names: keep the /usr one
      }
    }
    try {
      Files.delete(from);
    } catch (DirectoryNotEmptyException ignored) {
      // cannot happen after the loop, but a leftover directory is harmless
    }
  }

  /**
   * Compiles the Python standard library to bytecode with the disk's own interpreter: the disk is
   * read-only in the guest, and compiling the modules on every start costs seconds under TCG.
   */
  private void precompilePython(Path usr, Path tmp) throws IOException {
    Path python = null;
    try (Stream<Path> s = Files.list(usr.resolve("bin"))) {
      python = s.filter(p -> PathParts.name(p).matches("python3\\.\\d+")).findFirst().orElse(null);
    } catch (java.nio.file.NoSuchFileException e) {
      return;
    }
    if (python == null) {
      return;
    }
    List<Path> stdlib;
    try (Stream<Path> s = Files.list(usr.resolve("lib"))) {
      stdlib = s.filter(p -> PathParts.name(p).matches("python3(\\.\\d+)?")).toList();
    }
    say("compiling " + stdlib.size() + " Python library trees");
    List<String> cmd =
        new ArrayList<>(
            List.of(
                python.toString(),
                "-I",
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                // the files' times change on the ext4 disk; checking hashes would read every source
                "--invalidation-mode",
                "unchecked-hash",
                "-x",
                "/(test|tests|idlelib|lib2to3/tests)/"));
    stdlib.forEach(p -> cmd.add(p.toString()));
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(tmp.toFile()).redirectErrorStream(true);
    pb.environment().put("LD_LIBRARY_PATH", usr.resolve("lib/x86_64-linux-gnu").toString());
    pb.environment().remove("PYTHONPATH");
    pb.environment().remove("PYTHONHOME");
    Path log = tmp.resolve("compileall.log");
    pb.redirectOutput(log.toFile());
    try {
      Process p = pb.start();
      if (!p.waitFor(10, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new ImageBuildException("compiling the Python library did not finish in 10 min");
      }
      // compileall exits 1 when some file (Python 2 syntax in a test) does not compile: keep the
      // rest, but a missing interpreter or library is a failure
      if (p.exitValue() > 1) {
        throw new ImageBuildException(
            "compiling the Python library failed: " + Files.readString(log).trim());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ImageBuildException("interrupted while compiling the Python library", e);
    } finally {
      Files.deleteIfExists(log);
    }
  }

  /**
   * Links for the busybox applets that live in {@code /usr/bin} and {@code /usr/sbin}: the disk is
   * mounted over the initramfs's {@code /usr}, which held them ({@code #!/usr/bin/env python3}).
   */
  private static void addBusyboxLinks(Path usr, Path busyboxDeb, Path tmp) throws IOException {
    Path bb = tmp.resolve("busybox");
    DebianPackages.extract(busyboxDeb, bb);
    String list =
        new String(
            HostCommands.runForBytes(tmp, bb.resolve("bin/busybox").toString(), "--list-full"),
            StandardCharsets.UTF_8);
    Path root = PathParts.parent(usr);
    for (String line : list.split("\n", -1)) {
      line = line.trim();
      if (line.startsWith("usr/bin/") || line.startsWith("usr/sbin/")) {
        Path link = root.resolve(line);
        Files.createDirectories(PathParts.parent(link));
        if (!Files.exists(link, LinkOption.NOFOLLOW_LINKS)) {
          Files.createSymbolicLink(link, Path.of("/bin/busybox"));
        }
      }
    }
    Trees.delete(bb);
  }

  /** Bytes a tree takes: regular files, hard links once, rounded to 4 KiB blocks. */
  static long treeSize(Path root) throws IOException {
    Set<Object> seen = new java.util.HashSet<>(); // hard links count once
    long total = 0;
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)).toList()) {
        Object id = Files.readAttributes(p, "unix:ino").get("ino");
        if (seen.add(id)) {
          total += (Files.size(p) + 4095) / 4096 * 4096;
        }
      }
    }
    return total;
  }

  /** Package disks kept besides the current one (other flavours stay usable). */
  static final int KEEP_OTHERS = 4;

  private void prune(Path images, Path current) throws IOException {
    ImageCache.pruneOld(images, "packages-", current, KEEP_OTHERS, this::say);
  }
}
