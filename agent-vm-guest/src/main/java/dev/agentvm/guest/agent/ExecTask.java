package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
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
  // the polled path (runPolled): its command, whether a stop of it has begun and why
  private Optional<SessionProcess> polled = Optional.empty(); // guarded by lock
  private boolean stopping; // guarded by lock
  private boolean timedOut; // guarded by lock: the deadline began the stop, not a kill
  private Optional<ScheduledFuture<?>> deadlineTimer = Optional.empty(); // guarded by lock
  private final AtomicBoolean signalled =
      new AtomicBoolean(); // a signal reached the leader's group

  private final ExecutorService pool;

  /**
   * @param pool runs the stdin feeder, a stop (TERM, grace, KILL) and, without the native library,
   *     the output pumps: pooled threads, because creating a thread costs ~7 ms under TCG
   */
  ExecTask(int id, ExecSpec spec, FrameWriter out, ExecutorService pool) {
    this.id = id;
    this.spec = spec;
    this.out = out;
    this.pool = pool;
  }

  /** Stops the command's process group (TERM, then KILL after the grace period). */
  void kill() {
    Optional<SessionProcess> stop = Optional.empty();
    synchronized (lock) {
      killRequested.set(true);
      lock.notifyAll();
      if (polled.isPresent() && !stopping) {
        stopping = true;
        stop = polled;
      }
    }
    stop.ifPresent(this::stop);
  }

  /**
   * The deadline of a polled command: begins its stop unless it has ended or a stop has begun. Runs
   * on the worker (between waits) or on the deadline timer (when the worker may be blocked writing
   * output that the host does not read).
   */
  private void deadlinePassed(SessionProcess p) {
    synchronized (lock) {
      if (stopping || p.hasEnded()) {
        return; // ended in time: its EXIT says so, and nothing is signalled
      }
      stopping = true;
      timedOut = true;
    }
    stop(p);
  }

  /**
   * TERM, grace, KILL for a polled command, on a pool thread: the worker may be blocked writing
   * output to a host that went away (frames wait in the port), and a kill must not wait for it.
   * Without a thread to spare (a guest out of threads or processes: a fork bomb), KILL at once.
   */
  private void stop(SessionProcess p) {
    try {
      pool.execute(() -> termThenKill(p));
    } catch (RuntimeException | Error e) {
      p.signalGroup(true, signalled); // first: the stop is claimed, nobody else will send it
      try {
        GuestAgent.log("no thread to stop EXEC " + id + " gracefully (" + e + "): KILLed now");
      } catch (RuntimeException | Error again) {
        // out of memory even for the message: the KILL went out, that is what matters
      }
    }
  }

  /** TERM to the group, KILL after the grace period, each only while the leader is not reaped. */
  private void termThenKill(SessionProcess p) {
    p.signalGroup(false, signalled);
    try {
      p.waitFor(spec.killGraceMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt(); // a pool thread: KILL at once, then leave
    }
    p.signalGroup(true, new AtomicBoolean());
  }

  /**
   * Arms the deadline on the timer thread, once the worker is about to write output (the only wait
   * of the worker that its own poll timeout does not bound); commands without output, the most,
   * cost the timer nothing.
   */
  private void armDeadline(SessionProcess p, long deadline) {
    if (deadline == Long.MAX_VALUE) {
      return;
    }
    try {
      ScheduledFuture<?> f =
          Deadlines.TIMER.schedule(
              () -> deadlinePassed(p),
              Math.max(0, deadline - System.nanoTime()),
              TimeUnit.NANOSECONDS);
      synchronized (lock) {
        deadlineTimer = Optional.of(f);
      }
    } catch (RuntimeException | Error e) {
      GuestAgent.log("cannot arm the deadline timer of EXEC " + id + ": " + e); // the poll's stays
    }
  }

  private boolean armed; // the worker's own: armDeadline was called

  private void armOnce(SessionProcess p, long deadline) {
    if (!armed) {
      armed = true;
      armDeadline(p, deadline);
    }
  }

  /** One daemon thread for the deadlines of every polled command that writes output. */
  private static final class Deadlines {
    static final ScheduledThreadPoolExecutor TIMER = create();

    private static ScheduledThreadPoolExecutor create() {
      ScheduledThreadPoolExecutor t =
          new ScheduledThreadPoolExecutor(
              1,
              r -> {
                Thread th = new Thread(r, "agentvm-deadlines");
                th.setDaemon(true);
                return th;
              });
      t.setRemoveOnCancelPolicy(true); // a command's end removes its timer at once
      return t;
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
      Optional<SessionProcess> spawned =
          SessionProcess.spawnUnwatched(program, cmd, spec.env(), cwd);
      int pidfd = spawned.isPresent() ? spawned.get().openPidfd() : -1;
      if (pidfd >= 0) {
        runPolled(spawned.get(), pidfd, t0);
        return;
      }
      Process p;
      if (spawned.isPresent()) {
        spawned.get().watch(pool); // a kernel without pidfd_open: a thread waits for its end
        p = spawned.get();
      } else {
        p = SessionProcess.start(program, cmd, spec.env(), cwd, pool);
      }
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

  /**
   * Runs the started command on this thread alone: one {@code poll} waits for its output, its end
   * ({@code pidfd}) and its deadline, so a command costs no thread hand-off (under TCG each costs a
   * good part of a millisecond). The same outcomes as {@link #runStarted}: at the deadline or a
   * kill, TERM to the group and KILL after the grace period (on a pool thread: {@link #stop}), KILL
   * to what is left of the group when the leader ends after either, output drained at most {@value
   * #DRAIN_MILLIS} ms after the end (a child that left the group may hold the pipes).
   */
  private void runPolled(SessionProcess p, int pidfd, long t0) throws IOException {
    Future<?> stdin = null;
    Output stdout = new Output(p.rawStdout(), MessageType.STDOUT);
    Output stderr = new Output(p.rawStderr(), MessageType.STDERR);
    boolean ended = false;
    try {
      boolean killedBefore;
      synchronized (lock) {
        polled = Optional.of(p);
        killedBefore = killRequested.get() && !stopping;
        stopping |= killedBefore;
      }
      if (killedBefore) {
        stop(p);
      }
      if (spec.stdin().length == 0) {
        p.getOutputStream().close();
      } else {
        stdin = pool.submit(() -> feed(p.getOutputStream()));
      }
      byte[] buf = new byte[CHUNK];
      long deadline =
          spec.timeoutMillis() == 0 ? Long.MAX_VALUE : plusMillis(t0, spec.timeoutMillis());
      stdout.armOnOutput(p, deadline);
      stderr.armOnOutput(p, deadline);
      long drainUntil = Long.MAX_VALUE;
      boolean overdue = false; // the deadline has passed
      int code = 0;
      while (true) {
        long now = System.nanoTime();
        if (!ended && !overdue && deadline != Long.MAX_VALUE && now - deadline >= 0) {
          overdue = true;
          deadlinePassed(p);
        }
        if (ended && ((stdout.closed() && stderr.closed()) || now - drainUntil >= 0)) {
          break;
        }
        long wakeAt = ended ? drainUntil : overdue ? Long.MAX_VALUE : deadline;
        int r =
            NativeHelpers.awaitCommand(
                stdout.fd(), stderr.fd(), ended ? -1 : pidfd, waitMillis(wakeAt, now));
        if (r < 0) {
          throw new IOException("cannot wait for the command: poll failed with errno " + -r);
        }
        if ((r & NativeHelpers.STDOUT_READY) != 0) {
          stdout.readOnce(buf);
        }
        if ((r & NativeHelpers.STDERR_READY) != 0) {
          stderr.readOnce(buf);
        }
        if ((r & NativeHelpers.ENDED) != 0) {
          boolean stopped;
          synchronized (lock) {
            stopped = stopping;
          }
          if (stopped) {
            // the leader is gone, its group id still held by its unreaped pid: stop its children
            p.signalGroup(true, new AtomicBoolean());
          }
          code = p.reapEnded();
          ended = true;
          drainUntil = plusMillis(System.nanoTime(), DRAIN_MILLIS);
        }
      }
      long ms = (System.nanoTime() - t0) / 1_000_000;
      boolean late;
      synchronized (lock) {
        late = timedOut;
        deadlineTimer.ifPresent(f -> f.cancel(false));
      }
      int signal = signalled.get() && code > 128 && code <= 128 + 64 ? code - 128 : 0;
      ExitStatus exit =
          new ExitStatus(
              code,
              signal,
              ms,
              late,
              killRequested.get() && !late,
              stdout.limit.truncated,
              stderr.limit.truncated);
      out.write(Frame.response(MessageType.EXIT, id, exit.encode()));
    } finally {
      synchronized (lock) {
        deadlineTimer.ifPresent(f -> f.cancel(false));
      }
      try {
        if (!ended) { // the wait failed: leave nothing running
          p.signalGroup(true, new AtomicBoolean());
          p.reapEnded();
        }
      } finally {
        stdout.close();
        stderr.close();
        NativeHelpers.closeFd(pidfd);
        if (stdin != null) {
          stdin.cancel(true);
        }
      }
    }
  }

  /** How long the output of an ended command is waited for. */
  static final long DRAIN_MILLIS = 2000;

  /** {@code nanos} plus {@code millis}, saturated at {@link Long#MAX_VALUE}. */
  private static long plusMillis(long nanos, long millis) {
    long add = millis >= Long.MAX_VALUE / 1_000_000 ? Long.MAX_VALUE : millis * 1_000_000;
    long sum = nanos + add;
    return ((nanos ^ sum) & (add ^ sum)) < 0 ? Long.MAX_VALUE : sum;
  }

  /** Milliseconds until {@code at} for poll, -1 for never. */
  private static int waitMillis(long at, long now) {
    if (at == Long.MAX_VALUE) {
      return -1;
    }
    long ms = Math.max(0, (at - now + 999_999) / 1_000_000);
    return (int) Math.min(ms, Integer.MAX_VALUE);
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
        spec.timeoutMillis() == 0 ? Long.MAX_VALUE : plusMillis(t0, spec.timeoutMillis());
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
    long drainUntil = plusMillis(System.nanoTime(), DRAIN_MILLIS);
    awaitPump(to, stdout, drainUntil);
    awaitPump(te, stderr, drainUntil);
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
            stdout.limit.truncated,
            stderr.limit.truncated);
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

  private static void awaitPump(Future<?> pump, Pump p, long until) throws InterruptedException {
    try {
      pump.get(Math.max(0, until - System.nanoTime()), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      // a child that left the group holds the pipe: closing our end ends the pump's blocked read
      p.close();
    } catch (java.util.concurrent.ExecutionException e) {
      GuestAgent.log("output pump failed: " + e.getCause());
    }
  }

  /** How much of one stream has been forwarded, against the output limit. */
  private final class Limit {
    private long sent;
    private volatile boolean truncated;

    /** Of {@code n} bytes read, how many to forward (the rest is dropped and counted). */
    int take(int n) {
      long room = spec.outputLimit() - sent;
      int take = (int) Math.max(0, Math.min(n, room));
      if (take < n) {
        truncated = true;
      }
      sent += take;
      return take;
    }
  }

  /** One output stream of a polled command ({@link #runPolled}): read when poll says so. */
  private final class Output {
    private final FileInputStream in;
    private final MessageType type;
    final Limit limit = new Limit();
    private boolean closed;
    private boolean hostGone;
    private Optional<Runnable> beforeFirstWrite = Optional.empty();

    Output(FileInputStream in, MessageType type) {
      this.in = in;
      this.type = type;
    }

    java.io.FileDescriptor fd() throws IOException {
      return in.getFD(); // -1 inside once closed: poll leaves it out
    }

    boolean closed() {
      return closed;
    }

    /** Arms the command's deadline timer before this stream's first write (once per command). */
    void armOnOutput(SessionProcess p, long deadline) {
      beforeFirstWrite = Optional.of(() -> armOnce(p, deadline));
    }

    /** One read (poll said it will not wait); forwards what the limit allows. */
    void readOnce(byte[] buf) {
      int n;
      try {
        n = in.read(buf);
      } catch (IOException e) {
        n = -1; // a pipe that fails is over
      }
      if (n < 0) {
        close();
        return;
      }
      int take = limit.take(n);
      if (take > 0 && !hostGone) {
        beforeFirstWrite.ifPresent(Runnable::run);
        beforeFirstWrite = Optional.empty();
        try {
          out.write(Frame.response(type, id, Arrays.copyOf(buf, take)));
        } catch (IOException e) {
          hostGone = true; // keep draining: the command must never block on a full pipe
        }
      }
    }

    void close() {
      closed = true;
      try {
        in.close();
      } catch (IOException e) {
        // closing: nothing else to do
      }
    }
  }

  /** Forwards one output stream in chunks up to the limit, then drains and drops the rest. */
  private final class Pump implements Runnable {
    private final InputStream in;
    private final MessageType type;
    final Limit limit = new Limit();

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
          int take = limit.take(n);
          if (take > 0) { // else keep draining so the command never blocks on a full pipe
            out.write(Frame.response(type, id, Arrays.copyOf(buf, take)));
          }
        }
      } catch (IOException e) {
        // pipe closed by a kill, or the host went away: nothing more to forward
      }
    }
  }
}
