package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import java.io.ByteArrayOutputStream;
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
import java.util.concurrent.TimeUnit;

/**
 * A background process (SPAWN): it outlives host connections. While a host is attached its output
 * goes to that host as STDOUT/STDERR frames with the attaching request's id; while none is, each
 * stream keeps its last {@link #KEPT} bytes (older bytes are dropped and counted), replayed to the
 * next host that attaches. Its stdin stays open until the host closes it.
 */
final class Spawned {
  /** Bytes kept per stream while no host is attached. */
  static final int KEPT = 256 * 1024;

  final int handle;
  final String command;
  private final ExecSpec spec;
  private final Object lock = new Object();
  private final Kept keptOut = new Kept();
  private final Kept keptErr = new Kept();

  /** Stands for "no host attached" (no nulls in the agent: it has no nullness annotations). */
  private static final FrameWriter DETACHED = new FrameWriter(OutputStream.nullOutputStream());

  private final Process process;
  private final OutputStream stdin;
  private final long t0;
  private FrameWriter out = DETACHED; // guarded by lock: the attached host
  private int requestId; // guarded by lock
  private ExitStatus exit = new ExitStatus(0, 0, 0, false, false, false, false); // guarded by lock
  private boolean ended; // guarded by lock: exit is real
  private boolean exitDelivered; // guarded by lock

  private Spawned(int handle, ExecSpec spec, Process process, long t0) {
    this.handle = handle;
    this.spec = spec;
    this.command = spec.argv().get(0);
    this.process = process;
    this.stdin = process.getOutputStream();
    this.t0 = t0;
  }

  /** Starts the process in a session of its own, and its output pumps. */
  static Spawned start(int handle, ExecSpec spec, ExecutorService pool) throws IOException {
    Path cwd = Path.of(spec.cwd().isEmpty() ? "/tmp" : spec.cwd());
    Path program = UserErrors.checkExec(cwd, spec.argv(), spec.env());
    List<String> cmd = new ArrayList<>(spec.argv());
    if (!spec.script().isEmpty()) {
      // kept for the process's life: a background script may read itself again
      Path script = Files.createTempFile("agentvm-bg-", "");
      Files.writeString(script, spec.script(), StandardCharsets.UTF_8);
      cmd.add(script.toString());
      script.toFile().deleteOnExit();
    }
    long t0 = System.nanoTime();
    Process p = SessionProcess.start(program, cmd, spec.env(), cwd, pool);
    Spawned s = new Spawned(handle, spec, p, t0);
    s.watch(pool); // the pumps first: a process may write before it reads its input
    if (spec.stdin().length > 0) {
      s.write(spec.stdin());
    }
    return s;
  }

  private void watch(ExecutorService pool) {
    Process p = process;
    var outPump = pool.submit(() -> pump(p.getInputStream(), MessageType.STDOUT));
    var errPump = pool.submit(() -> pump(p.getErrorStream(), MessageType.STDERR));
    pool.execute(
        () -> {
          try {
            int code = p.waitFor();
            try {
              outPump.get(2, TimeUnit.SECONDS);
              errPump.get(2, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException
                | java.util.concurrent.TimeoutException e) {
              // a child that left the group holds a pipe: report the exit anyway
            }
            ended(code);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        });
  }

  private void pump(InputStream in, MessageType type) {
    byte[] buf = new byte[ExecTask.CHUNK];
    try (in) {
      int n;
      while ((n = in.read(buf)) > 0) {
        deliver(type, Arrays.copyOf(buf, n));
      }
    } catch (IOException e) {
      // the pipe closed: nothing more to forward
    }
  }

  private void deliver(MessageType type, byte[] chunk) {
    synchronized (lock) {
      if (out != DETACHED) {
        try {
          out.write(Frame.response(type, requestId, chunk));
          return;
        } catch (IOException e) {
          out = DETACHED; // the host went away: keep the output for the next one
        }
      }
      (type == MessageType.STDOUT ? keptOut : keptErr).add(chunk);
    }
  }

  private void ended(int code) {
    synchronized (lock) {
      long ms = (System.nanoTime() - t0) / 1_000_000;
      int signal = code > 128 && code <= 128 + 64 ? code - 128 : 0;
      exit =
          new ExitStatus(code, signal, ms, false, false, keptOut.dropped > 0, keptErr.dropped > 0);
      ended = true;
      sendExitIfAttached();
    }
  }

  private void sendExitIfAttached() {
    if (out != DETACHED && ended && !exitDelivered) {
      try {
        out.write(Frame.response(MessageType.EXIT, requestId, exit.encode()));
        exitDelivered = true;
      } catch (IOException e) {
        out = DETACHED;
      }
    }
  }

  /**
   * Sends {@code first} (the answer to SPAWN or ATTACH), then the kept output, then everything
   * live, to {@code w} under {@code id}; a host attached before is detached.
   */
  void attach(FrameWriter w, int id, Frame first) throws IOException {
    synchronized (lock) {
      out = DETACHED;
      w.write(first);
      keptOut.replay(w, MessageType.STDOUT, id);
      keptErr.replay(w, MessageType.STDERR, id);
      out = w;
      requestId = id;
      exitDelivered = false;
      sendExitIfAttached();
    }
  }

  /** The host went away: keep output from now on. */
  void detach() {
    synchronized (lock) {
      out = DETACHED;
    }
  }

  void write(byte[] data) throws IOException {
    synchronized (stdinLock()) {
      stdin.write(data);
      stdin.flush();
    }
  }

  void closeStdin() throws IOException {
    synchronized (stdinLock()) {
      stdin.close();
    }
  }

  private Object stdinLock() {
    return keptOut; // any private object that the output path does not lock
  }

  /** TERM to the group, KILL after the grace period (on a worker: this waits). */
  void kill() throws InterruptedException {
    Process p = process;
    if (!p.isAlive()) {
      return;
    }
    ProcessGroup.signal(p.pid(), false);
    p.waitFor(spec.killGraceMillis(), TimeUnit.MILLISECONDS);
    ProcessGroup.signal(p.pid(), true);
  }

  boolean running() {
    synchronized (lock) {
      return !ended;
    }
  }

  /** True once it ended and a host received its EXIT: the agent may forget it. */
  boolean collected() {
    synchronized (lock) {
      return ended && exitDelivered;
    }
  }

  int exitCode() {
    synchronized (lock) {
      return ended ? exit.exitCode() : 0;
    }
  }

  /** The last {@link #KEPT} bytes of one stream. */
  private static final class Kept {
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
    private long dropped;

    void add(byte[] chunk) {
      buf.write(chunk, 0, chunk.length);
      if (buf.size() > KEPT) {
        byte[] all = buf.toByteArray();
        int cut = all.length - KEPT;
        dropped += cut;
        buf.reset();
        buf.write(all, cut, KEPT);
      }
    }

    void replay(FrameWriter w, MessageType type, int id) throws IOException {
      byte[] all = buf.toByteArray();
      for (int off = 0; off < all.length; off += ExecTask.CHUNK) {
        w.write(
            Frame.response(
                type,
                id,
                Arrays.copyOfRange(all, off, Math.min(all.length, off + ExecTask.CHUNK))));
      }
      buf.reset();
    }
  }
}
