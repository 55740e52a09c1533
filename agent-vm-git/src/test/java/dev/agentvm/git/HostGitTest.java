package dev.agentvm.git;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
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
}
