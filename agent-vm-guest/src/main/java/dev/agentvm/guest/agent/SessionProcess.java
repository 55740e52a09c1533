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
 * {@code POSIX_SPAWN_SETSID} ({@link NativeHelpers#spawn}), reaped by a pooled thread. Without it:
 * {@link ProcessBuilder} running {@code setsid} (one more exec, and the JDK's launch path in the
 * interpreter: ~5 ms more per command under TCG).
 */
final class SessionProcess extends Process {
  private final long pid;
  private final OutputStream stdin;
  private final InputStream stdout;
  private final InputStream stderr;
  private final CompletableFuture<Integer> exit = new CompletableFuture<>();
  private final Object reaping = new Object(); // the reap and signals: one at a time
  private boolean reaped; // guarded by reaping: from then on the pid may be another process's

  private SessionProcess(long pid, FileDescriptor[] fds) {
    this.pid = pid;
    this.stdin = new FileOutputStream(fds[0]);
    // buffered as the JDK's own process streams are; and FileInputStream.readAllBytes seeks, which
    // a pipe refuses ("Illegal seek")
    this.stdout = new BufferedInputStream(new FileInputStream(fds[1]));
    this.stderr = new BufferedInputStream(new FileInputStream(fds[2]));
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
    if (NativeHelpers.isLoaded()) {
      try {
        return spawn(program, argv, env, cwd, reaper);
      } catch (LinkageError e) {
        NativeHelpers.unusable(e);
      }
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

  private static Process spawn(
      Path program, List<String> argv, Map<String, String> env, Path cwd, Executor reaper)
      throws IOException {
    Map<String, String> all = new HashMap<>(System.getenv());
    all.putAll(env);
    byte[][] args = new byte[argv.size()][];
    for (int i = 0; i < args.length; i++) {
      args[i] = argv.get(i).getBytes(StandardCharsets.UTF_8);
    }
    byte[][] envp = new byte[all.size()][];
    int i = 0;
    for (Map.Entry<String, String> e : all.entrySet()) {
      envp[i++] = (e.getKey() + "=" + e.getValue()).getBytes(StandardCharsets.UTF_8);
    }
    FileDescriptor[] fds = new FileDescriptor[3];
    long pid =
        NativeHelpers.spawn(
            program.toString().getBytes(StandardCharsets.UTF_8),
            args,
            envp,
            cwd.toString().getBytes(StandardCharsets.UTF_8),
            fds);
    SessionProcess p = new SessionProcess(pid, fds);
    try {
      reaper.execute(p::reap);
    } catch (RuntimeException | Error e) {
      // no thread to watch it (a guest out of threads): stop what was started, leave nothing
      ProcessGroup.signal(pid, true);
      p.reap();
      throw new IOException("cannot watch the command started as process " + pid + ": " + e, e);
    }
    return p;
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
