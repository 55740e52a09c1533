package dev.agentvm.git;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** HostGit without a VM: its command runner, and the import of a hostile bundle. */
class HostGitTest {
  @TempDir Path tmp;

  /** A stand-in for the git binary: a shell script. */
  private Path fakeGit(String body) throws IOException {
    Path f = tmp.resolve("fake-git-" + System.nanoTime());
    Files.writeString(f, "#!/bin/sh\n" + body + "\n");
    Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rwx------"));
    return f;
  }

  private HostGit.Out fake(String body, Duration timeout) throws IOException {
    return HostGit.run(
        fakeGit(body).toString(), timeout, HostGit.MAX_STDOUT, tmp, Map.of(), "status");
  }

  @Test
  void aGitThatHangsIsKilledAtTheDeadlineEvenWithOutputPending() throws IOException {
    long t0 = System.nanoTime();
    // a child that keeps the output open: the old runner read stdout to its end before waiting
    HostGit.GitCommandException e =
        assertThrows(
            HostGit.GitCommandException.class,
            () -> fake("echo started; sleep 60 & sleep 60", Duration.ofMillis(500)));
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertTrue(e.getMessage().contains("did not finish"), e.getMessage());
    assertTrue(ms < 10_000, "took " + ms + " ms");
  }

  @Test
  void stdoutBeyondTheLimitIsAnErrorAndStderrIsCut() throws IOException {
    HostGit.GitCommandException big =
        assertThrows(
            HostGit.GitCommandException.class,
            () -> fake("head -c 3000000 /dev/zero", Duration.ofSeconds(30)));
    assertTrue(big.getMessage().contains("more output than the limit"), big.getMessage());
    // endless output is stopped while it runs, not after
    HostGit.GitCommandException endless =
        assertThrows(HostGit.GitCommandException.class, () -> fake("yes", Duration.ofSeconds(30)));
    assertTrue(endless.getMessage().contains("more output than the limit"), endless.getMessage());
    HostGit.Out chatty = fake("head -c 200000 /dev/zero | tr '\\0' x >&2", Duration.ofSeconds(30));
    assertEquals(0, chatty.exit());
    assertTrue(chatty.stderr().length() <= HostGit.MAX_STDERR + 20, "" + chatty.stderr().length());
    assertTrue(chatty.stderr().endsWith("[truncated]"));
  }

  @Test
  void gitSeesAScrubbedEnvironmentAndTheFixedOptions() throws IOException {
    HostGit.Out env = fake("env; echo \"ARGS $*\"", Duration.ofSeconds(30));
    Set<String> keys =
        env.stdout()
            .lines()
            .filter(l -> l.contains("=") && !l.startsWith("ARGS "))
            .map(l -> l.substring(0, l.indexOf('=')))
            .collect(Collectors.toSet());
    // sh itself adds PWD (and may add SHLVL, _)
    Set<String> allowed =
        Set.of(
            "PATH",
            "HOME",
            "GIT_CONFIG_NOSYSTEM",
            "GIT_CONFIG_GLOBAL",
            "GIT_TERMINAL_PROMPT",
            "LC_ALL",
            "PWD",
            "SHLVL",
            "_",
            "OLDPWD");
    assertTrue(allowed.containsAll(keys), "unexpected: " + keys);
    assertTrue(env.stdout().contains("HOME=/nonexistent/"), env.stdout());
    String args = env.stdout().lines().filter(l -> l.startsWith("ARGS ")).findFirst().orElse("");
    assertTrue(
        args.contains("-c gc.auto=0 -c maintenance.auto=false -c core.hooksPath=/dev/null"), args);

    // real git: nothing from the system or the user's global configuration, hooks off
    Path repo = tmp.resolve("cfg");
    Files.createDirectories(repo);
    assertEquals(0, HostGit.git(repo, Map.of(), "init", "-q").exit());
    HostGit.Out cfg = HostGit.git(repo, Map.of(), "config", "--list", "--show-origin");
    assertEquals(0, cfg.exit(), cfg.stderr());
    for (String line : cfg.stdout().lines().toList()) {
      assertTrue(
          line.startsWith("command line:") || line.startsWith("file:.git/config"),
          "config from elsewhere: " + line);
    }
    assertTrue(cfg.stdout().contains("core.hookspath=/dev/null"), cfg.stdout());
  }

  // -- a hostile bundle --

  private static String git(Path dir, String... args) throws IOException {
    HostGit.Out o = HostGit.git(dir, Map.of(), args);
    if (o.exit() != 0) {
      throw new IOException("git " + Arrays.toString(args) + ": " + o.stderr());
    }
    return o.stdout().trim();
  }

  /** git with {@code input} on its stdin (HostGit's runner gives git none). */
  private static String gitIn(Path dir, String input, String... args) throws IOException {
    Path f = dir.resolve("../stdin-" + System.nanoTime()).normalize();
    Files.writeString(f, input);
    try {
      List<String> cmd = Stream.concat(Stream.of("git"), Arrays.stream(args)).toList();
      Process p =
          new ProcessBuilder(cmd)
              .directory(dir.toFile())
              .redirectInput(f.toFile())
              .redirectError(ProcessBuilder.Redirect.DISCARD)
              .start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      assertEquals(0, p.waitFor(), "git " + cmd);
      return out;
    } catch (InterruptedException e) {
      throw new IOException(e);
    } finally {
      Files.delete(f);
    }
  }

  private static final String[] WHO = {"-c", "user.name=t", "-c", "user.email=t@t"};

  private static String commit(Path repo, String tree, String parent, String msg)
      throws IOException {
    String[] args =
        Stream.concat(Arrays.stream(WHO), Stream.of("commit-tree", tree, "-p", parent, "-m", msg))
            .toArray(String[]::new);
    return git(repo, args);
  }

  /** The host's repository and a clone standing for the guest's. */
  private record Repos(Path user, Path guest, String base) {}

  private Repos repos() throws IOException {
    Path user = tmp.resolve("user");
    Files.createDirectories(user);
    git(user, "init", "-q", "-b", "main");
    Files.writeString(user.resolve("a.txt"), "a\n");
    git(user, "add", "a.txt");
    String[] c =
        Stream.concat(Arrays.stream(WHO), Stream.of("commit", "-q", "-m", "init"))
            .toArray(String[]::new);
    git(user, c);
    Path guest = tmp.resolve("guest");
    git(tmp, "clone", "-q", user.toString(), guest.toString());
    return new Repos(user, guest, git(user, "rev-parse", "HEAD"));
  }

  private Path bundle(Repos r, String commit, String name) throws IOException {
    git(r.guest(), "update-ref", "refs/agentvm/result", commit);
    Path b = tmp.resolve(name);
    git(r.guest(), "bundle", "create", "-q", b.toString(), r.base() + "..refs/agentvm/result");
    return b;
  }

  private static List<String> objectFiles(Path repo) throws IOException {
    try (Stream<Path> s = Files.walk(repo.resolve(".git/objects"))) {
      return s.filter(Files::isRegularFile)
          .map(p -> repo.relativize(p).toString())
          .filter(p -> !p.contains("/info/"))
          .sorted()
          .toList();
    }
  }

  private static List<Path> entries(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.toList();
    }
  }

  @Test
  void aBundleWithADotGitTreeEntryIsRejectedAndLeavesNothingInTheRepository() throws IOException {
    Repos r = repos();
    // what an agent can do in the guest: a tree with a ".git" entry, made with plumbing
    String blob = gitIn(r.guest(), "evil hook\n", "hash-object", "-w", "--stdin");
    String tree = gitIn(r.guest(), "100644 blob " + blob + "\t.git\n", "mktree");
    String evil = commit(r.guest(), tree, r.base(), "evil");
    Path b = bundle(r, evil, "evil.bundle");
    List<String> before = objectFiles(r.user());
    Path scratch = Files.createDirectories(tmp.resolve("scratch"));
    HostGit host = HostGit.open(r.user());
    HostGit.GitCommandException e =
        assertThrows(
            HostGit.GitCommandException.class, () -> host.fetchBundle(b, scratch, 1L << 20));
    assertTrue(e.getMessage().contains("fail git's checks"), e.getMessage());
    assertTrue(e.getMessage().contains("hasDotgit"), e.getMessage());
    assertEquals(before, objectFiles(r.user()), "objects or pack leftovers added");
    assertNotEquals(0, HostGit.git(r.user(), Map.of(), "cat-file", "-e", evil).exit());
    assertNotEquals(0, HostGit.git(r.user(), Map.of(), "cat-file", "-e", blob).exit());
    assertEquals(List.of(), entries(scratch), "quarantine left behind");
  }

  @Test
  void aGoodBundleArrivesWithoutARefAndLimitsAreChecked() throws IOException {
    Repos r = repos();
    Files.writeString(r.guest().resolve("b.txt"), "b\n");
    git(r.guest(), "add", "b.txt");
    String[] c =
        Stream.concat(Arrays.stream(WHO), Stream.of("commit", "-q", "-m", "b"))
            .toArray(String[]::new);
    git(r.guest(), c);
    String good = git(r.guest(), "rev-parse", "HEAD");
    Path b = bundle(r, good, "good.bundle");
    Path scratch = Files.createDirectories(tmp.resolve("scratch"));
    HostGit host = HostGit.open(r.user());
    String refsBefore = git(r.user(), "for-each-ref");

    HostGit.GitCommandException tooBig =
        assertThrows(
            HostGit.GitCommandException.class,
            () -> host.fetchBundle(b, scratch, Files.size(b) - 1));
    assertTrue(tooBig.getMessage().contains("more than the limit"), tooBig.getMessage());
    assertNotEquals(0, HostGit.git(r.user(), Map.of(), "cat-file", "-e", good).exit());

    assertEquals(good, host.fetchBundle(b, scratch, 1L << 20));
    assertEquals(0, HostGit.git(r.user(), Map.of(), "cat-file", "-e", good).exit());
    assertEquals(refsBefore, git(r.user(), "for-each-ref"), "a ref was written");
    assertEquals(List.of(), entries(scratch), "quarantine left behind");

    // two refs: refused before any object is read
    git(r.guest(), "update-ref", "refs/heads/other", good);
    Path two = tmp.resolve("two.bundle");
    git(
        r.guest(),
        "bundle",
        "create",
        "-q",
        two.toString(),
        "refs/agentvm/result",
        "refs/heads/other");
    HostGit.GitCommandException refs =
        assertThrows(
            HostGit.GitCommandException.class, () -> host.fetchBundle(two, scratch, 1L << 20));
    assertTrue(refs.getMessage().contains("unexpected refs"), refs.getMessage());
    // not a bundle at all
    Path junk = tmp.resolve("junk.bundle");
    Files.write(junk, "x".repeat(100).getBytes(StandardCharsets.UTF_8));
    assertThrows(
        HostGit.GitCommandException.class, () -> host.fetchBundle(junk, scratch, 1L << 20));
    assertFalse(Files.exists(scratch.resolve("x")));
  }

  @Test
  void guestControlFilesAreReadWithABound() throws IOException {
    GitTask task = GitTask.builder(tmp, "main").command("true").build();
    Path out = Files.createDirectories(tmp.resolve("out"));
    Files.writeString(out.resolve("head"), "a".repeat(40) + "\n");
    assertEquals("a".repeat(40), GitTaskRunner.guestLine(task, out, "head", 128, false));
    Files.writeString(out.resolve("head"), "a".repeat(1000));
    GitTaskException e =
        assertThrows(
            GitTaskException.class, () -> GitTaskRunner.guestLine(task, out, "head", 128, false));
    assertTrue(e.getMessage().contains("more than 128 bytes"), e.getMessage());
    Files.writeString(out.resolve("step"), "s".repeat(10_000));
    String step = GitTaskRunner.guestLine(task, out, "step", 4096, true);
    assertTrue(step != null && step.length() < 4200 && step.endsWith("[truncated]"));
    assertNull(GitTaskRunner.guestText(task, out, "absent", 128, false));
    // a patch keeps its last newline (git apply needs it)
    Files.writeString(out.resolve("p"), "diff\n");
    assertEquals("diff\n", GitTaskRunner.guestText(task, out, "p", 128, false));
    Files.createSymbolicLink(out.resolve("link"), out.resolve("head"));
    assertNull(GitTaskRunner.guestText(task, out, "link", 4096, false), "a link is not followed");
  }
}
