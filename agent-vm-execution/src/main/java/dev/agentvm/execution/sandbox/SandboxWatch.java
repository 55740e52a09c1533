package dev.agentvm.execution.sandbox;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.protocol.FsEvent;
import java.io.IOException;
import java.util.function.Consumer;
import org.jspecify.annotations.Nullable;

/**
 * A watch on one directory of a sandbox (not its subdirectories): created, modified and deleted
 * entries reach the listener. It lasts until closed: across pause/resume, checkpoints and forks'
 * parents the sandbox watches again after the VM is back (changes in between are not reported: list
 * the directory if they matter). Close it to stop.
 */
public final class SandboxWatch implements AutoCloseable {
  private final Sandbox sandbox;
  private final String dir;
  private final Consumer<FsEvent> listener;
  private volatile AgentClient.@Nullable Watch current;
  private volatile boolean closed;

  SandboxWatch(Sandbox sandbox, String dir, Consumer<FsEvent> listener) {
    this.sandbox = sandbox;
    this.dir = dir;
    this.listener = listener;
  }

  /** The watched directory. */
  public String directory() {
    return dir;
  }

  /** True until closed (or lost: the directory went away, a rollback to before it existed). */
  public boolean isActive() {
    return !closed;
  }

  // the future's action cannot fail; the identity check asks "is this still the newest watch"
  @SuppressWarnings({"FutureReturnValueIgnored", "ReferenceEquality"})
  void start(AgentClient agent) throws IOException {
    AgentClient.Watch w = agent.watch(dir, listener, sandbox.commandTimeout());
    current = w;
    w.ended()
        .whenComplete(
            (v, e) -> {
              if (e == null && current == w) {
                closed = true; // the guest ended it: the directory is gone
              }
              // else the connection closed: the sandbox watches again once its VM is back
            });
  }

  void lost() {
    closed = true;
    current = null;
  }

  /** Stops the watch. Idempotent. */
  @Override
  public void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    sandbox.forgetWatch(this);
    AgentClient.Watch w = current;
    current = null;
    if (w != null && sandbox.state() == SandboxState.RUNNING) {
      sandbox.withAgent(
          a -> {
            a.stopWatch(w, sandbox.commandTimeout());
            return Boolean.TRUE;
          });
    }
  }
}
