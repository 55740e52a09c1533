package dev.agentvm.git;

import dev.agentvm.internal.LogText;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
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
   * Fetches the objects of a bundle the guest made, each checked ({@code transfer.fsckObjects}),
   * and returns the commit its one ref names. No ref of the host is written.
   */
  String fetchBundle(Path bundle) throws IOException {
    String heads = ok("bundle", "list-heads", bundle.toString());
    List<String> lines = heads.lines().filter(l -> !l.isBlank()).toList();
    if (lines.size() != 1 || !lines.get(0).endsWith(" refs/agentvm/result")) {
      throw new GitCommandException(
          "the guest's bundle has unexpected refs: " + LogText.clean(heads.trim()));
    }
    String line = lines.get(0);
    String sha = line.substring(0, line.indexOf(' '));
    // the guest wrote the bundle: its object id goes into git's argv below and later (merge-base,
    // update-ref, merge-tree), so it must be a plain object id, not an option or a rev expression
    if (!OBJECT_ID.matcher(sha).matches()) {
      throw new GitCommandException(
          "the guest's bundle names no plain object id: " + LogText.clean(line));
    }
    ok(
        "-c",
        "transfer.fsckObjects=true",
        "fetch",
        "-q",
        "--no-tags",
        "--no-write-fetch-head",
        bundle.toString(),
        "refs/agentvm/result");
    ok("cat-file", "-e", sha + "^{commit}");
    return sha;
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
