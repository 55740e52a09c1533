package dev.agentvm.git;

import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * The host side of a git task: git commands on the host repository. The repository's work tree,
 * index and HEAD are never touched; only objects are added and one branch is moved, by
 * compare-and-swap.
 */
final class HostGit {
  private static final Duration TIMEOUT = Duration.ofMinutes(5);

  private static final String GIT = "git";

  /** Bytes of a git command's stdout read back; more is an error. */
  static final long MAX_STDOUT = 1L << 20;

  /** Bytes of a git command's stderr read back (a diagnostic: more is cut). */
  static final int MAX_STDERR = 64 << 10;

  /** Bytes of stderr git may write to its temporary file before it is stopped. */
  private static final long STDERR_ON_DISK = 8L << 20;

  /**
   * On every command: no automatic gc or maintenance in the user's repository, and no hook of the
   * repository runs (the data is the guest's).
   */
  private static final List<String> FIXED_OPTIONS =
      List.of(
          "-c",
          "gc.auto=0",
          "-c",
          "maintenance.auto=false",
          "-c",
          "core.hooksPath=/dev/null",
          "-c",
          "core.fsmonitor=false");

  /**
   * A full object id (SHA-1 or SHA-256), lower-case hex: never an option, never a rev expression.
   */
  private static final Pattern OBJECT_ID = Pattern.compile("[0-9a-f]{40}|[0-9a-f]{64}");

  /** Refs listed from a guest's bundle at most (it must have exactly one). */
  static final int MAX_BUNDLE_REFS = 16;

  private static final String RESULT_REF = "refs/agentvm/result";

  /** The result of one git command. */
  record Out(int exit, String stdout, String stderr) {}

  /** A git command that failed. */
  static final class GitCommandException extends IOException {
    private static final long serialVersionUID = 1L;

    GitCommandException(String message) {
      super(message);
    }
  }

  private final Path repo;
  private final Path commonDir;

  private HostGit(Path repo, Path commonDir) {
    this.repo = repo;
    this.commonDir = commonDir;
  }

  /** Opens {@code repo}; fails if it is not a git repository. */
  static HostGit open(Path repo) throws IOException {
    if (!Files.isDirectory(repo)) {
      throw new GitCommandException(repo + " is not a directory");
    }
    Out o = git(repo, Map.of(), "rev-parse", "--path-format=absolute", "--git-common-dir");
    if (o.exit() != 0) {
      throw new GitCommandException(repo + " is not a git repository: " + o.stderr().trim());
    }
    return new HostGit(repo, Path.of(o.stdout().trim()).toRealPath());
  }

  /** The repository's git directory (shared by its worktrees): the key for locking. */
  Path commonDir() {
    return commonDir;
  }

  /** The commit {@code ref} names. */
  String commit(String ref) throws IOException {
    Out o =
        git(repo, Map.of(), "rev-parse", "--verify", "-q", "--end-of-options", ref + "^{commit}");
    if (o.exit() != 0) {
      throw new GitCommandException("no commit '" + ref + "' in " + repo);
    }
    return o.stdout().trim();
  }

  /** The commit a branch points to, or null if there is no such branch. */
  @Nullable String branchTip(String branch) throws IOException {
    Out o = git(repo, Map.of(), "rev-parse", "--verify", "-q", "refs/heads/" + branch);
    return o.exit() == 0 ? o.stdout().trim() : null;
  }

  String tree(String commit) throws IOException {
    return ok("rev-parse", "--verify", commit + "^{tree}").trim();
  }

  static boolean validBranchName(String branch) throws IOException {
    return git(Path.of("/"), Map.of(), "check-ref-format", "refs/heads/" + branch).exit() == 0;
  }

  /**
   * A bundle of {@code commit}'s history, made through a throwaway repository that borrows the
   * objects (alternates): the host repository gets no ref for it.
   */
  Path bundle(String commit, Path scratch) throws IOException {
    Path tmp = scratch.resolve("bundle-repo.git");
    ok(scratch, "init", "-q", "--bare", tmp.toString());
    Files.writeString(tmp.resolve("objects/info/alternates"), commonDir.resolve("objects") + "\n");
    Path out = scratch.resolve("base.bundle");
    ok(tmp, "update-ref", "refs/heads/base", commit);
    ok(tmp, "bundle", "create", "-q", out.toString(), "refs/heads/base");
    return out;
  }

  /**
   * Brings the objects of a bundle the guest made into the host repository, each one checked, and
   * returns the commit its one ref names. No ref of the host is written.
   *
   * <p>{@code git fetch <bundle>} does not check a bundle's objects before git 2.46 (Debian 12 has
   * 2.39), even with {@code transfer.fsckObjects}; a failed check also leaves the pack's temporary
   * file behind in the receiving repository. So the objects pass through two throwaway repositories
   * in {@code scratch}, both borrowing the host's objects (alternates, read only): the bundle is
   * unbundled into the first, unchecked; the second fetches from the first over {@code file://}
   * with {@code fetch.fsckObjects}, which does check each object (a {@code .git} tree entry, a bad
   * {@code .gitmodules}...); only then does the host repository fetch from the second, checked
   * again. Both are deleted before this returns; a rejected bundle leaves nothing in the host
   * repository.
   *
   * @throws GitCommandException when the bundle is larger than {@code maxBytes}, has other refs
   *     than the one expected, or an object fails the checks
   */
  String fetchBundle(Path bundle, Path scratch, long maxBytes) throws IOException {
    BasicFileAttributes a;
    try {
      a = Files.readAttributes(bundle, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
    } catch (IOException e) {
      throw new GitCommandException("the guest made no result bundle");
    }
    if (!a.isRegularFile()) {
      throw new GitCommandException("the guest's result bundle is not a regular file");
    }
    if (a.size() > maxBytes) {
      throw new GitCommandException(
          "the guest's result bundle has "
              + a.size()
              + " bytes, more than the limit of "
              + maxBytes
              + " (GitTaskRunner.Builder.maxBundleBytes)");
    }
    Out listed = git(repo, Map.of(), "bundle", "list-heads", bundle.toString());
    if (listed.exit() != 0) {
      throw new GitCommandException(
          "the guest's bundle is not a bundle: " + LogText.clean(listed.stderr().trim()));
    }
    String heads = listed.stdout();
    List<String> lines = heads.lines().filter(l -> !l.isBlank()).limit(MAX_BUNDLE_REFS).toList();
    if (lines.size() != 1 || !lines.get(0).endsWith(" refs/agentvm/result")) {
      throw new GitCommandException(
          "the guest's bundle has unexpected refs: "
              + LogText.clean(String.join("\n", lines))
              + (lines.size() == MAX_BUNDLE_REFS ? " ..." : ""));
    }
    String line = lines.get(0);
    String sha = line.substring(0, line.indexOf(' '));
    // the guest wrote the bundle: its object id goes into git's argv below and later (merge-base,
    // update-ref, merge-tree), so it must be a plain object id, not an option or a rev expression
    if (!OBJECT_ID.matcher(sha).matches()) {
      throw new GitCommandException(
          "the guest's bundle names no plain object id: " + LogText.clean(line));
    }
    Path quarantine = Files.createTempDirectory(scratch, "quarantine-");
    try {
      Path raw = borrowing(quarantine, "unbundled.git");
      Out u = git(raw, Map.of(), "bundle", "unbundle", bundle.toString());
      if (u.exit() != 0) {
        throw new GitCommandException(
            "the guest's bundle cannot be unpacked: " + LogText.clean(u.stderr().trim()));
      }
      ok(raw, "update-ref", RESULT_REF, sha);
      Path checked = borrowing(quarantine, "checked.git");
      Out f = checkedFetch(checked, raw, RESULT_REF + ":" + RESULT_REF);
      if (f.exit() != 0) {
        throw new GitCommandException(
            "the guest's objects fail git's checks, nothing was imported: "
                + LogText.clean(f.stderr().trim()));
      }
      Out h = checkedFetch(repo, checked, RESULT_REF);
      if (h.exit() != 0) {
        throw new GitCommandException(
            "fetching the checked objects failed: " + LogText.clean(h.stderr().trim()));
      }
    } finally {
      Trees.delete(quarantine);
    }
    ok("cat-file", "-e", sha + "^{commit}");
    return sha;
  }

  /** A new bare repository {@code parent/name} that borrows the host's objects (read only). */
  private Path borrowing(Path parent, String name) throws IOException {
    Path dir = parent.resolve(name);
    ok(parent, "init", "-q", "--bare", dir.toString());
    Files.writeString(dir.resolve("objects/info/alternates"), commonDir.resolve("objects") + "\n");
    return dir;
  }

  /** A fetch into {@code into} from the repository {@code from}, every object checked. */
  private static Out checkedFetch(Path into, Path from, String refspec) throws IOException {
    return git(
        into,
        Map.of(),
        "-c",
        "transfer.fsckObjects=true",
        "-c",
        "fetch.fsckObjects=true",
        "-c",
        "protocol.file.allow=always",
        "fetch",
        "-q",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        from.toUri().toString(),
        refspec);
  }

  boolean isAncestor(String older, String newer) throws IOException {
    Out o = git(repo, Map.of(), "merge-base", "--is-ancestor", older, newer);
    if (o.exit() > 1) {
      throw new GitCommandException("git merge-base failed: " + o.stderr().trim());
    }
    return o.exit() == 0;
  }

  /**
   * Moves (or creates, when {@code expected} is null) a branch only if it still points to {@code
   * expected}: a concurrent change is an error, not overwritten.
   */
  void updateBranch(String branch, String to, @Nullable String expected, String message)
      throws IOException {
    String old = expected != null ? expected : "0".repeat(to.length());
    Out o = git(repo, Map.of(), "update-ref", "-m", message, "refs/heads/" + branch, to, old);
    if (o.exit() != 0) {
      throw new GitCommandException(
          "branch " + branch + " changed while the task ran: " + o.stderr().trim());
    }
  }

  /** A merge: either the merge commit, or the conflicting paths (and no commit). */
  record Merge(@Nullable String commit, List<String> conflicts) {}

  Merge merge(String ours, String theirs, String message, String name, String email)
      throws IOException {
    Out o =
        git(
            repo,
            Map.of(),
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            ours,
            theirs);
    List<String> lines = o.stdout().lines().toList();
    if (o.exit() == 1) {
      return new Merge(null, lines.subList(1, lines.size()).stream().distinct().toList());
    }
    if (o.exit() != 0 || lines.isEmpty()) {
      throw new GitCommandException("git merge-tree failed: " + o.stderr().trim());
    }
    Map<String, String> who =
        Map.of(
            "GIT_AUTHOR_NAME", name,
            "GIT_AUTHOR_EMAIL", email,
            "GIT_COMMITTER_NAME", name,
            "GIT_COMMITTER_EMAIL", email);
    Out c = git(repo, who, "commit-tree", lines.get(0), "-p", ours, "-p", theirs, "-m", message);
    if (c.exit() != 0) {
      throw new GitCommandException("git commit-tree failed: " + c.stderr().trim());
    }
    return new Merge(c.stdout().trim(), List.of());
  }

  private String ok(String... args) throws IOException {
    return ok(repo, args);
  }

  private static String ok(Path dir, String... args) throws IOException {
    Out o = git(dir, Map.of(), args);
    if (o.exit() != 0) {
      throw new GitCommandException(
          "git " + String.join(" ", args) + " failed (" + o.exit() + "): " + o.stderr().trim());
    }
    return o.stdout();
  }

  static Out git(Path dir, Map<String, String> env, String... args) throws IOException {
    return run(GIT, TIMEOUT, MAX_STDOUT, dir, env, args);
  }

  /**
   * Runs {@code gitBinary} with the fixed options and the scrubbed environment (see {@link
   * #environment}), {@code env} on top. Output goes to temporary files, never to a pipe that could
   * fill; the wait has a deadline; stdout beyond {@code maxStdout} bytes is an error, stderr is
   * truncated to {@link #MAX_STDERR} bytes (it is only ever a diagnostic).
   */
  static Out run(
      String gitBinary,
      Duration timeout,
      long maxStdout,
      Path dir,
      Map<String, String> env,
      String... args)
      throws IOException {
    List<String> cmd = new ArrayList<>(List.of(gitBinary));
    cmd.addAll(FIXED_OPTIONS);
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile());
    pb.environment().clear();
    pb.environment().putAll(environment());
    pb.environment().putAll(env);
    String what = "git " + (args.length > 0 ? args[0] : "");
    Path out = Files.createTempFile("agentvm-git-", ".out");
    Path err = Files.createTempFile("agentvm-git-", ".err");
    try {
      pb.redirectOutput(out.toFile());
      pb.redirectError(err.toFile());
      Process p;
      try {
        p = pb.start();
      } catch (IOException e) {
        throw new GitCommandException("cannot run git (is it installed?): " + e.getMessage());
      }
      try {
        p.getOutputStream().close();
        long deadline = System.nanoTime() + timeout.toNanos();
        long step = 2;
        while (!p.waitFor(step, TimeUnit.MILLISECONDS)) {
          step = Math.min(step * 2, 100);
          if (Files.size(out) > maxStdout || Files.size(err) > STDERR_ON_DISK) {
            kill(p);
            throw new GitCommandException(
                what + " wrote more output than the limit (" + maxStdout + " bytes); stopped");
          }
          if (System.nanoTime() - deadline > 0) {
            kill(p);
            throw new GitCommandException(what + " did not finish in " + timeout + "; killed");
          }
        }
      } catch (InterruptedException e) {
        kill(p);
        Thread.currentThread().interrupt();
        throw new GitCommandException("interrupted while running " + what);
      } catch (IOException | RuntimeException e) {
        kill(p); // never leave git running behind a failed check
        throw e;
      }
      if (Files.size(out) > maxStdout) {
        throw new GitCommandException(
            what + " wrote more output than the limit (" + maxStdout + " bytes)");
      }
      return new Out(p.exitValue(), readHead(out, maxStdout), readHead(err, MAX_STDERR));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }

  /**
   * What git gets as its environment: nothing inherited but {@code PATH}. {@code HOME} names a
   * directory that does not exist and {@code GIT_CONFIG_GLOBAL}/{@code GIT_CONFIG_NOSYSTEM} turn
   * off the global and system configuration: the plumbing used here needs no user setting, and none
   * (nor an inherited {@code GIT_DIR}, {@code GIT_CONFIG_*}, {@code GIT_OBJECT_DIRECTORY}...) may
   * redirect it or weaken its checks. The repository's own configuration still applies.
   */
  static Map<String, String> environment() {
    String path = System.getenv("PATH");
    return Map.of(
        "PATH",
        path == null || path.isEmpty() ? "/usr/local/bin:/usr/bin:/bin" : path,
        "HOME",
        "/nonexistent/agent-vm-git-home",
        "GIT_CONFIG_NOSYSTEM",
        "1",
        "GIT_CONFIG_GLOBAL",
        "/dev/null",
        "GIT_TERMINAL_PROMPT",
        "0",
        "LC_ALL",
        "C");
  }

  /** Stops git and everything it started, and waits (bounded) for it to go. */
  private static void kill(Process p) {
    p.descendants().forEach(ProcessHandle::destroyForcibly);
    p.destroyForcibly();
    try {
      p.waitFor(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** At most {@code max} bytes of {@code file}, as text, marked when cut. */
  private static String readHead(Path file, long max) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      byte[] b = in.readNBytes((int) Math.min(max, Integer.MAX_VALUE - 8));
      String s = new String(b, StandardCharsets.UTF_8);
      return in.read() >= 0 ? s + "...[truncated]" : s;
    }
  }
}
