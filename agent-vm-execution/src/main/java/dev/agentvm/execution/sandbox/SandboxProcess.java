package dev.agentvm.execution.sandbox;

import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.protocol.ExitStatus;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A background process in a sandbox: started by {@link Sandbox#start}, it runs until it ends or is
 * killed, across pause/resume and checkpoints (the sandbox re-attaches to it after each; what it
 * wrote meanwhile is replayed, the last 256 KiB per stream). Its output goes to the listener given
 * at start, and the last {@link #TAIL} bytes of each stream are kept here too.
 */
public final class SandboxProcess {
  /** Bytes of each stream kept for {@link #stdoutTail()} and {@link #stderrTail()}. */
  public static final int TAIL = 64 * 1024;

  private final Sandbox sandbox;
  private volatile int handle = -1; // set once the guest answered SPAWN
  private final String command;
  private final OutputListener listener;
  private final Tail out = new Tail();
  private final Tail err = new Tail();
  private final CompletableFuture<ExitStatus> exit = new CompletableFuture<>();

  SandboxProcess(Sandbox sandbox, String command, OutputListener listener) {
    this.sandbox = sandbox;
    this.command = command;
    this.listener = listener;
  }

  /**
   * Its handle in the guest (stable across reconnects; forks' copies have it under the same one).
   */
  public int handle() {
    return handle;
  }

  void handle(int h) {
    this.handle = h;
  }

  /**
   * Its command (argv[0]); for a process found by {@link Sandbox#attach}, as the guest reported it
   * (at most 512 characters, control characters escaped).
   */
  public String command() {
    return command;
  }

  /** True until it ended (or was lost with a rollback to before it started, or a close). */
  public boolean isAlive() {
    return !exit.isDone();
  }

  /** Writes {@code data} to its standard input. */
  public void write(byte[] data) throws IOException {
    sandbox.withAgent(
        a -> {
          a.writeInput(handle, data, sandbox.commandTimeout());
          return Boolean.TRUE;
        });
  }

  /** Closes its standard input. */
  public void closeStdin() throws IOException {
    sandbox.withAgent(
        a -> {
          a.closeInput(handle, sandbox.commandTimeout());
          return Boolean.TRUE;
        });
  }

  /** Stops its process group: TERM, then KILL after the request's kill grace. */
  public void kill() throws IOException {
    sandbox.withAgent(
        a -> {
          a.killBackground(handle, sandbox.commandTimeout());
          return Boolean.TRUE;
        });
  }

  /**
   * Waits up to {@code timeout} for it to end and returns its exit status.
   *
   * @throws TimeoutException if it still runs
   * @throws SandboxException if it was lost (a rollback to before it started, the sandbox closed)
   */
  public ExitStatus waitFor(Duration timeout) throws TimeoutException, InterruptedException {
    try {
      return exit.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      throw new SandboxException(
          "background process " + handle + " (" + command + ") was lost", e.getCause());
    }
  }

  /** Its end, for composing. */
  public CompletableFuture<ExitStatus> onExit() {
    return exit.copy();
  }

  /** The last {@link #TAIL} bytes of its standard output seen by this host. */
  public byte[] stdoutTail() {
    return out.bytes();
  }

  /** The last {@link #TAIL} bytes of its standard error seen by this host. */
  public byte[] stderrTail() {
    return err.bytes();
  }

  /** What the sandbox passes to the agent: chunks go to the tails and the user's listener. */
  OutputListener sink() {
    return new OutputListener() {
      @Override
      public void onStdout(byte[] chunk) {
        out.add(chunk);
        listener.onStdout(chunk);
      }

      @Override
      public void onStderr(byte[] chunk) {
        err.add(chunk);
        listener.onStderr(chunk);
      }
    };
  }

  /** One connection's view of the end: an exit ends it; a closed connection does not. */
  @SuppressWarnings("FutureReturnValueIgnored") // the action cannot fail: its future has no news
  void follow(CompletableFuture<ExitStatus> connectionExit) {
    connectionExit.whenComplete(
        (s, e) -> {
          if (s != null) {
            exit.complete(s);
          }
          // else the connection closed (pause, checkpoint, fork): the sandbox re-attaches
        });
  }

  void lost(Throwable why) {
    exit.completeExceptionally(why);
  }

  private static final class Tail {
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream();

    synchronized void add(byte[] chunk) {
      buf.write(chunk, 0, chunk.length);
      if (buf.size() > 2 * TAIL) {
        byte[] all = buf.toByteArray();
        buf.reset();
        buf.write(all, all.length - TAIL, TAIL);
      }
    }

    synchronized byte[] bytes() {
      byte[] all = buf.toByteArray();
      return all.length <= TAIL
          ? all
          : java.util.Arrays.copyOfRange(all, all.length - TAIL, all.length);
    }
  }
}
