package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One EXEC: runs the command in a session (and so a process group) of its own ({@link
 * SessionProcess}), streams its output in chunks, and on timeout or KILL sends TERM, then KILL
 * after the grace period, to the whole group, so no child outlives it.
 */
final class ExecTask {
  static final int CHUNK = 32 * 1024;

  private final int id;
  private final ExecSpec spec;
  private final FrameWriter out;
  private final AtomicBoolean killRequested = new AtomicBoolean();
  private final Object lock = new Object();
  private boolean exited; // guarded by lock

  private final ExecutorService pool;

  /**
   * @param pool runs the output pumps and the stdin feeder: pooled threads, because creating a
   *     thread costs ~7 ms under TCG and an EXEC needs up to three
   */
  ExecTask(int id, ExecSpec spec, FrameWriter out, ExecutorService pool) {
    this.id = id;
    this.spec = spec;
    this.out = out;
    this.pool = pool;
  }

  /** Stops the command's process group (TERM, then KILL after the grace period). */
  void kill() {
    synchronized (lock) {
      killRequested.set(true);
      lock.notifyAll();
    }
  }

  /** Runs the command to its end and sends EXIT (or an ERROR if it could not start). */
  void run() throws IOException {
    Path cwd = Path.of(spec.cwd().isEmpty() ? "/tmp" : spec.cwd());
    Path program = UserErrors.checkExec(cwd, spec.argv(), spec.env());
    Path script = null;
    List<String> cmd = new ArrayList<>(spec.argv());
    if (!spec.script().isEmpty()) {
      script = Files.createTempFile("agentvm-script-", "");
      Files.writeString(script, spec.script(), StandardCharsets.UTF_8);
      cmd.add(script.toString());
    }
    long t0 = System.nanoTime();
    try {
      Process p = SessionProcess.start(program, cmd, spec.env(), cwd, pool);
      try {
        runStarted(p, t0);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        if (p.isAlive()) {
          ProcessGroup.signal(p.pid(), true);
        }
      }
    } finally {
      if (script != null) {
        Files.deleteIfExists(script);
      }
    }
  }

  /** Feeds, pumps and waits for the started command, stops it at its deadline, sends EXIT. */
  private void runStarted(Process p, long t0) throws IOException, InterruptedException {
    Future<?> stdin = null;
    if (spec.stdin().length == 0) {
      p.getOutputStream().close();
    } else {
      stdin = pool.submit(() -> feed(p.getOutputStream()));
    }
    Pump stdout = new Pump(p.getInputStream(), MessageType.STDOUT);
    Pump stderr = new Pump(p.getErrorStream(), MessageType.STDERR);
    Future<?> to = pool.submit(stdout);
    Future<?> te = pool.submit(stderr);
    boolean timedOut = false;
    long deadline =
        spec.timeoutMillis() == 0 ? Long.MAX_VALUE : t0 + spec.timeoutMillis() * 1_000_000;
    wakeOnExit(p);
    synchronized (lock) {
      while (!exited && p.isAlive() && !killRequested.get()) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          timedOut = true;
          break;
        }
        lock.wait(Math.max(1, Math.min(1000, left / 1_000_000)));
      }
    }
    boolean signalled = false;
    if (p.isAlive()) {
      signalled = stopGroup(p);
    } else if (timedOut || killRequested.get()) {
      ProcessGroup.signal(p.pid(), true); // the leader is gone; make sure its children are too
    }
    p.waitFor();
    // Output pipes close when every process holding them is gone; a child that left the group
    // could keep them open, so do not wait for the pumps forever.
    awaitPump(to, stdout);
    awaitPump(te, stderr);
    if (stdin != null) {
      stdin.cancel(true);
    }
    long ms = (System.nanoTime() - t0) / 1_000_000;
    int code = p.exitValue();
    int signal = signalled && code > 128 && code <= 128 + 64 ? code - 128 : 0;
    ExitStatus exit =
        new ExitStatus(
            code,
            signal,
            ms,
            timedOut,
            killRequested.get() && !timedOut,
            stdout.truncated,
            stderr.truncated);
    out.write(Frame.response(MessageType.EXIT, id, exit.encode()));
  }

  /** Wakes the wait in {@link #run} as soon as {@code p} exits, not at its next timeout. */
  @SuppressWarnings("FutureReturnValueIgnored") // the action cannot fail: its future has no news
  private void wakeOnExit(Process p) {
    p.onExit()
        .thenRun(
            () -> {
              synchronized (lock) {
                exited = true;
                lock.notifyAll();
              }
            });
  }

  /** TERM to the group, KILL after the grace period. Returns true once signals were sent. */
  private boolean stopGroup(Process p) throws InterruptedException {
    ProcessGroup.signal(p.pid(), false);
    // KILL after the grace period, or at once if the leader went: its children may ignore TERM
    p.waitFor(spec.killGraceMillis(), TimeUnit.MILLISECONDS);
    ProcessGroup.signal(p.pid(), true);
    return true;
  }

  private void feed(OutputStream stdin) {
    try (stdin) {
      stdin.write(spec.stdin());
    } catch (IOException e) {
      // the command closed its input early: that is its business
    }
  }

  private static void awaitPump(Future<?> pump, Pump p) throws InterruptedException {
    try {
      pump.get(2, TimeUnit.SECONDS);
    } catch (TimeoutException e) {
      // a child that left the group holds the pipe: closing our end ends the pump's blocked read
      p.close();
    } catch (java.util.concurrent.ExecutionException e) {
      GuestAgent.log("output pump failed: " + e.getCause());
    }
  }

  /** Forwards one output stream in chunks up to the limit, then drains and drops the rest. */
  private final class Pump implements Runnable {
    private final InputStream in;
    private final MessageType type;
    private long sent;
    private volatile boolean truncated;

    Pump(InputStream in, MessageType type) {
      this.in = in;
      this.type = type;
    }

    void close() {
      try {
        in.close();
      } catch (IOException e) {
        // closing to unblock a read: nothing else to do
      }
    }

    @Override
    public void run() {
      byte[] buf = new byte[CHUNK];
      try (in) {
        int n;
        while ((n = in.read(buf)) > 0) {
          long room = spec.outputLimit() - sent;
          if (room <= 0) {
            truncated = true;
            continue; // keep draining so the command never blocks on a full pipe
          }
          int take = (int) Math.min(n, room);
          if (take < n) {
            truncated = true;
          }
          sent += take;
          out.write(Frame.response(type, id, Arrays.copyOf(buf, take)));
        }
      } catch (IOException e) {
        // pipe closed by a kill, or the host went away: nothing more to forward
      }
    }
  }
}
