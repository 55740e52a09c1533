package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The native launch path on the build machine ({@link NativeLibrary}). Every VM test then runs it
 * in a guest.
 */
class SessionProcessTest {
  @TempDir static Path dir;
  private static ExecutorService pool;

  @BeforeAll
  static void loadTheLibrary() throws Exception {
    NativeLibrary.compileAndLoad(dir);
    pool = Executors.newCachedThreadPool();
  }

  @AfterAll
  static void stopPool() {
    NativeHelpers.forget(); // the other tests in this JVM take the ProcessBuilder path
    if (pool != null) {
      pool.shutdownNow();
    }
  }

  private static Process start(String script, Map<String, String> env, Path cwd)
      throws IOException {
    List<String> argv = List.of("sh", "-c", script);
    Process p = SessionProcess.start(UserErrors.checkExec(cwd, argv, env), argv, env, cwd, pool);
    assertTrue(p instanceof SessionProcess, "the native path: " + p.getClass());
    return p;
  }

  @Test
  void aCommandLeadsItsOwnSessionWithOnlyItsPipesAndCleanSignals() throws Exception {
    Path cwd = Files.createDirectories(dir.resolve("work"));
    Process p =
        start(
            "cat; echo \"$X\"; pwd; s=$(cut -d' ' -f1,5,6 /proc/$$/stat); echo \"$s\";"
                + " ls /proc/$$/fd | tr '\\n' ' '; echo;"
                + " grep -E '^Sig(Blk|Ign)' /proc/$$/status; echo err >&2; exit 7",
            Map.of("X", "ünïcode value"),
            cwd);
    p.getOutputStream().write("input\n".getBytes(StandardCharsets.UTF_8));
    p.getOutputStream().close();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(7, p.waitFor());
    assertEquals(7, p.exitValue());
    assertFalse(p.isAlive());
    List<String> lines = out.lines().toList();
    assertEquals("input", lines.get(0));
    assertEquals("ünïcode value", lines.get(1), "the environment, UTF-8");
    assertEquals(cwd.toRealPath().toString(), lines.get(2));
    String pid = Long.toString(p.pid());
    assertEquals(pid + " " + pid + " " + pid, lines.get(3), "pid, process group, session");
    assertEquals("0 1 2 ", lines.get(4), "no descriptor of the agent");
    assertEquals("SigBlk:\t0000000000000000", lines.get(5), out);
    assertEquals("SigIgn:\t0000000000000000", lines.get(6), out);
    assertEquals("err\n", err);
    assertTrue(p.onExit().isDone());
  }

  @Test
  void aSignalledCommandEndsWith128PlusTheSignalAndIsReaped() throws Exception {
    Process p = start("echo up; exec sleep 60", Map.of(), dir);
    assertEquals("up", new String(p.getInputStream().readNBytes(2), StandardCharsets.UTF_8));
    assertTrue(p.isAlive());
    assertThrows(IllegalThreadStateException.class, p::exitValue);
    assertFalse(p.waitFor(50, TimeUnit.MILLISECONDS));
    p.destroy();
    assertTrue(p.waitFor(10, TimeUnit.SECONDS));
    assertEquals(128 + 15, p.exitValue());
    assertFalse(Files.exists(Path.of("/proc/" + p.pid())), "reaped, no zombie left");
    p.destroyForcibly(); // after the reap: signals nothing (the pid may be another's)
  }

  @Test
  void theRequestsPathIsSearchedAndAFileWithoutAShebangRunsThroughSh() throws Exception {
    // as execvp does it: the PATH of the command's environment, and ENOEXEC means /bin/sh
    Path bin = Files.createDirectories(dir.resolve("own-bin"));
    Path script = Files.writeString(bin.resolve("no-shebang"), "echo \"sh ran $0 with $1\"\n");
    Files.setPosixFilePermissions(
        script, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    List<String> argv = List.of("no-shebang", "arg");
    Map<String, String> env = Map.of("PATH", bin.toString());
    Path program = UserErrors.checkExec(dir, argv, env);
    assertEquals(script, program);
    Process p = SessionProcess.start(program, argv, env, dir, pool);
    assertTrue(p instanceof SessionProcess, "the native path: " + p.getClass());
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), out);
    assertEquals("sh ran " + script + " with arg\n", out);
  }

  @Test
  void aProgramThatCannotStartIsAnIoErrorNamingWhy() {
    Path missing = Path.of("/nonexistent/prog");
    IOException e =
        assertThrows(
            IOException.class,
            () -> SessionProcess.start(missing, List.of("prog"), Map.of(), dir, pool));
    assertTrue(e.getMessage().contains("No such file"), e.getMessage());
  }
}
