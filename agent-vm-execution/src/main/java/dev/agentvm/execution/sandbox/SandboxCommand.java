package dev.agentvm.execution.sandbox;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecResult;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/** A command started by {@link Sandbox#execAsync}: its result to come, and a way to stop it. */
public final class SandboxCommand {
  private final AgentClient.Execution execution;
  private final CompletableFuture<ExecResult> result;
  private final Duration deadline;

  SandboxCommand(
      AgentClient.Execution execution, CompletableFuture<ExecResult> result, Duration deadline) {
    this.execution = execution;
    this.result = result;
    this.deadline = deadline;
  }

  /**
   * Completes with the command's result (also when it timed out: {@link ExecResult#timedOut()}), or
   * exceptionally: an {@code AgentException} if the agent failed, a {@code VmCrashedException} if
   * QEMU died.
   */
  public CompletableFuture<ExecResult> result() {
    return result;
  }

  /** Asks the guest to stop the command and its process group (TERM, then KILL after a grace). */
  public void kill() throws IOException {
    execution.kill(deadline);
  }
}
