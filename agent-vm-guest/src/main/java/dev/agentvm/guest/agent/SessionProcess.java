package dev.agentvm.guest.agent;

import java.io.BufferedInputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A command started as the leader of a session (and so a process group) of its own, so that a kill
 * reaches everything it started. With the agent's native library: one {@code posix_spawn} with
 * {@code POSIX_SPAWN_SETSID} ({@link NativeHelpers#spawn}), reaped by a pooled thread or by its
 * owner ({@link #openPidfd}). Without it: {@link ProcessBuilder} running {@code setsid} (one more
 * exec, and the JDK's launch path in the interpreter: ~5 ms more per command under TCG).
 */
final class SessionProcess extends Process {
  private final long pid;
  private final OutputStream stdin;
  private final FileInputStream rawStdout;
  private final FileInputStream rawStderr;
  private final InputStream stdout;
  private final InputStream stderr;
  private final CompletableFuture<Integer> exit = new CompletableFuture<>();
  private final Object reaping = new Object(); // the reap and signals: one at a time
  private boolean reaped; // guarded by reaping: from then on the pid may be another process's

  private SessionProcess(long pid, FileDescriptor[] fds) {
    this.pid = pid;
    this.stdin = new FileOutputStream(fds[0]);
    this.rawStdout = new FileInputStream(fds[1]);
    this.rawStderr = new FileInputStream(fds[2]);
    // buffered as the JDK's own process streams are; and FileInputStream.readAllBytes seeks, which
    // a pipe refuses ("Illegal seek")
    this.stdout = new BufferedInputStream(rawStdout);
    this.stderr = new BufferedInputStream(rawStderr);
  }

  /**
   * Starts {@code argv} in {@code cwd} with the agent's environment plus {@code env}.
   *
   * @param program the file {@code execvp} would run for {@code argv[0]} with that environment's
   *     {@code PATH} ({@link UserErrors#checkExec}); a file without a {@code #!} line runs through
   *     {@code /bin/sh}, as {@code execvp} runs it
   * @param reaper runs the wait for the command's end (a thread for its whole life)
   */
  static Process start(
      Path program, List<String> argv, Map<String, String> env, Path cwd, Executor reaper)
      throws IOException {
    java.util.Optional<SessionProcess> spawned = spawnUnwatched(program, argv, env, cwd);
    if (spawned.isPresent()) {
      spawned.get().watch(reaper);
      return spawned.get();
    }
    List<String> cmd = new ArrayList<>();
    cmd.add("setsid");
    cmd.addAll(argv);
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.environment().putAll(env);
    pb.directory(cwd.toFile());
    try {
      return pb.start();
    } catch (IOException e) {
      // the command was checked; what is left is the agent's own trouble (no setsid, no processes)
      throw new IOException("cannot start the command through setsid: " + e.getMessage(), e);
    }
  }

  /**
   * Starts {@code argv} as {@link #start} does when the agent's native library is loaded, but with
   * nobody waiting for its end: the caller either waits for it itself ({@link #openPidfd}, {@link
   * #reapEnded}) or has a thread do it ({@link #watch}). Empty without the library.
   */
  static java.util.Optional<SessionProcess> spawnUnwatched(
      Path program, List<String> argv, Map<String, String> env, Path cwd) throws IOException {
    if (!NativeHelpers.isLoaded()) {
      return java.util.Optional.empty();
    }
    try {
      return java.util.Optional.of(spawn(program, argv, env, cwd));
    } catch (LinkageError e) {
      NativeHelpers.unusable(e);
      return java.util.Optional.empty();
    }
  }

  private static SessionProcess spawn(
      Path program, List<String> argv, Map<String, String> env, Path cwd) throws IOException {
    byte[][] args = new byte[argv.size()][];
    for (int i = 0; i < args.length; i++) {
      args[i] = argv.get(i).getBytes(StandardCharsets.UTF_8);
    }
    byte[][] envp = env.isEmpty() ? AgentEnvironment.ENVP : environment(env);
    FileDescriptor[] fds = new FileDescriptor[3];
    long pid =
        NativeHelpers.spawn(
            program.toString().getBytes(StandardCharsets.UTF_8),
            args,
            envp,
            cwd.toString().getBytes(StandardCharsets.UTF_8),
            fds);
    return new SessionProcess(pid, fds);
  }

  /** Has a thread of {@code reaper} wait for the end (once). */
  void watch(Executor reaper) throws IOException {
    try {
      reaper.execute(this::reap);
    } catch (RuntimeException | Error e) {
      // no thread to watch it (a guest out of threads): stop what was started, leave nothing
      ProcessGroup.signal(pid, true);
      reap();
      closeOutput();
      throw new IOException("cannot watch the command started as process " + pid + ": " + e, e);
    }
  }

  /**
   * A descriptor that becomes readable when the process ends (to close with {@link
   * NativeHelpers#closeFd}), or -1 when the kernel cannot give one (before Linux 5.3).
   */
  int openPidfd() {
    try {
      int fd = NativeHelpers.pidfdOpen(pid);
      return fd < 0 ? -1 : fd;
    } catch (LinkageError e) {
      NativeHelpers.unusable(e);
      return -1;
    }
  }

  /**
   * Reaps the process once it has ended (its pidfd was readable; else this waits for the end).
   *
   * @return its exit code, or 128 + the signal that ended it
   */
  int reapEnded() {
    if (!exit.isDone()) {
      reap();
    }
    return exitValue();
  }

  /**
   * TERM ({@code force} false) or KILL to every member of the process group, only while the leader
   * is not reaped: until then its pid, and so the group's id, cannot belong to another process.
   * Sets {@code sent} before signalling, so whoever reaps the leader sees it.
   */
  void signalGroup(boolean force, java.util.concurrent.atomic.AtomicBoolean sent) {
    synchronized (reaping) {
      if (!reaped) {
        sent.set(true);
        ProcessGroup.signal(pid, force);
      }
    }
  }

  /**
   * Whether the process has ended (reaped, or ended and waiting to be), as the kernel says: a
   * deadline that passes then is not a timeout. False when it cannot tell.
   */
  boolean hasEnded() {
    synchronized (reaping) {
      if (reaped) {
        return true;
      }
      try {
        return NativeHelpers.endedPid(pid) == 1; // unreaped: the pid is still this process's
      } catch (LinkageError e) {
        return false;
      }
    }
  }

  /** The command's stdout as the descriptor's own stream (not buffered), for one reader. */
  FileInputStream rawStdout() {
    return rawStdout;
  }

  /** The command's stderr as the descriptor's own stream (not buffered), for one reader. */
  FileInputStream rawStderr() {
    return rawStderr;
  }

  /** The agent's environment with {@code env} over it, as {@code NAME=value} strings. */
  private static byte[][] environment(Map<String, String> env) {
    Map<String, String> all = new HashMap<>(System.getenv());
    all.putAll(env);
    return envp(all);
  }

  private static byte[][] envp(Map<String, String> vars) {
    byte[][] envp = new byte[vars.size()][];
    int i = 0;
    for (Map.Entry<String, String> e : vars.entrySet()) {
      envp[i++] = (e.getKey() + "=" + e.getValue()).getBytes(StandardCharsets.UTF_8);
    }
    return envp;
  }

  /**
   * The agent's own environment, encoded once: it never changes, and most commands add nothing to
   * it. The native side only reads the arrays.
   */
  private static final class AgentEnvironment {
    static final byte[][] ENVP = envp(System.getenv());
  }

  private void reap() {
    int code = NativeHelpers.waitPid(pid); // ended, not reaped: signal() cannot hit another process
    if (code < 0) {
      GuestAgent.log("cannot wait for process " + pid + ": errno " + -code);
    }
    synchronized (reaping) {
      NativeHelpers.reapPid(pid);
      reaped = true;
    }
    try {
      stdin.close(); // as the JDK's processes do: nobody writes to a command that has ended
    } catch (IOException e) {
      // already closed
    }
    exit.complete(code < 0 ? 128 : code);
  }

  private void closeOutput() {
    for (InputStream s : new InputStream[] {stdout, stderr}) {
      try {
        s.close();
      } catch (IOException e) {
        // already closed
      }
    }
  }

  @Override
  public OutputStream getOutputStream() {
    return stdin;
  }

  @Override
  public InputStream getInputStream() {
    return stdout;
  }

  @Override
  public InputStream getErrorStream() {
    return stderr;
  }

  @Override
  public int waitFor() throws InterruptedException {
    try {
      return exit.get();
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause()); // never completed exceptionally
    }
  }

  @Override
  public boolean waitFor(long timeout, TimeUnit unit) throws InterruptedException {
    try {
      exit.get(timeout, unit);
      return true;
    } catch (TimeoutException e) {
      return false;
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    }
  }

  @Override
  public int exitValue() {
    Integer code = exit.getNow(null);
    if (code == null) {
      throw new IllegalThreadStateException("process " + pid + " has not exited");
    }
    return code;
  }

  @Override
  public boolean isAlive() {
    return !exit.isDone();
  }

  @Override
  public long pid() {
    return pid;
  }

  @Override
  public CompletableFuture<Process> onExit() {
    return exit.thenApply(code -> this);
  }

  @Override
  public void destroy() {
    signal(false);
  }

  @Override
  public Process destroyForcibly() {
    signal(true);
    return this;
  }

  /** Signals the process itself while it is not yet reaped (after that its pid may be reused). */
  private void signal(boolean force) {
    synchronized (reaping) {
      if (!reaped) {
        ProcessHandle.of(pid)
            .ifPresent(
                h -> {
                  if (force) {
                    h.destroyForcibly();
                  } else {
                    h.destroy();
                  }
                });
      }
    }
  }
}
