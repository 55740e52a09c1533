package dev.agentvm.cli;

import dev.agentvm.image.CachePrune;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Frees disk space: old images and package disks, old execution outputs, downloads if asked. */
@Command(
    name = "prune",
    mixinStandardHelpOptions = true,
    description =
        "Remove old guest images and package disks (not the newest, not one a paused sandbox"
            + " needs), execution outputs (exec-*) older than --outputs-older-than, and with --downloads"
            + " the downloaded Debian packages; prints what went and the space freed.")
final class PruneCommand implements Callable<Integer> {
  @Option(names = "--dry-run", description = "only list what would be removed")
  boolean dryRun;

  @Option(names = "--downloads", description = "also remove downloaded Debian packages")
  boolean downloads;

  @Option(
      names = "--outputs-older-than",
      paramLabel = "DURATION",
      description = "execution outputs older than this go (ISO-8601 or e.g. 7d, 12h; default 7d)")
  String outputsOlderThan = "7d";

  @Option(
      names = "--cache",
      description = "cache directory (default: $AGENTVM_CACHE_DIR or ${DEFAULT-VALUE})")
  Path cache = MicroImageBuilder.defaultCacheRoot();

  @Option(
      names = "--outputs",
      description = "execution outputs directory (default: ${DEFAULT-VALUE})")
  Path outputs = AgentVmPaths.stateRoot().resolve("outputs");

  @Option(names = "--json", description = "print JSON instead of text")
  boolean json;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    Duration age;
    try {
      age = parseAge(outputsOlderThan);
    } catch (IllegalArgumentException e) {
      spec.commandLine().getErr().println(e.getMessage());
      return 2;
    }
    CachePrune.Report cached = CachePrune.prune(cache, dryRun, downloads);
    List<CachePrune.Removed> removed = new ArrayList<>(cached.removed());
    removed.addAll(pruneOutputs(Instant.now().minus(age)));
    long freed = removed.stream().mapToLong(CachePrune.Removed::bytes).sum();
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("dryRun", dryRun);
      m.put(
          "removed",
          removed.stream()
              .map(
                  r -> {
                    Map<String, Object> e = new LinkedHashMap<>();
                    e.put("path", r.path().toString());
                    e.put("kind", r.kind());
                    e.put("bytes", r.bytes());
                    return e;
                  })
              .toList());
      m.put("keptPinned", cached.pinned().stream().map(Path::toString).toList());
      m.put("bytesFreed", freed);
      Options.printJson(out, m);
    } else {
      for (CachePrune.Removed r : removed) {
        out.printf(
            "%s %s %s (%.1f MB)%n",
            dryRun ? "would remove" : "removed", r.kind(), r.path(), r.bytes() / 1e6);
      }
      for (Path p : cached.pinned()) {
        out.printf("kept %s: a paused sandbox needs it%n", p);
      }
      out.printf("%s %.1f MB%n", dryRun ? "would free" : "freed", freed / 1e6);
      out.flush();
    }
    return 0;
  }

  /** The names the executor gives output directories by default. */
  static final java.util.regex.Pattern EXECUTION_OUTPUT =
      java.util.regex.Pattern.compile("exec-[0-9a-f]{12}");

  /** Output directories of executions last changed before {@code before}. */
  private List<CachePrune.Removed> pruneOutputs(Instant before) throws IOException {
    List<CachePrune.Removed> out = new ArrayList<>();
    if (!Files.isDirectory(outputs, LinkOption.NOFOLLOW_LINKS)) {
      return out;
    }
    try (Stream<Path> s = Files.list(outputs)) {
      for (Path p : s.sorted().toList()) {
        // only what the executor makes (exec-<12 hex>): never another directory given by mistake
        if (!EXECUTION_OUTPUT.matcher(String.valueOf(p.getFileName())).matches()
            || !Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)
            || !Files.getLastModifiedTime(p, LinkOption.NOFOLLOW_LINKS)
                .toInstant()
                .isBefore(before)) {
          continue;
        }
        out.add(new CachePrune.Removed(p, "execution output", CachePrune.sizeOnDisk(p)));
        if (!dryRun) {
          Trees.delete(p);
        }
      }
    }
    return out;
  }

  /** {@code 7d}, {@code 12h}, {@code 30m} or an ISO-8601 duration ({@code PT12H}). */
  static Duration parseAge(String s) {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d{1,6})([dhm])").matcher(s);
    if (m.matches()) {
      long n = Long.parseLong(m.group(1));
      return switch (m.group(2)) {
        case "d" -> Duration.ofDays(n);
        case "h" -> Duration.ofHours(n);
        default -> Duration.ofMinutes(n);
      };
    }
    try {
      Duration d = Duration.parse(s);
      if (d.isNegative()) {
        throw new IllegalArgumentException("a negative age: " + s);
      }
      return d;
    } catch (java.time.format.DateTimeParseException e) {
      throw new IllegalArgumentException("not a duration (7d, 12h, 30m or PT12H): " + s, e);
    }
  }
}
