package dev.agentvm.execution;

import java.util.concurrent.CompletableFuture;

/** A submitted execution: its id, its state, its result, and a way to cancel it. */
public final class Execution {
  private final String id;
  private final CompletableFuture<ExecutionResult> result;
  private final AgentExecutor.Task task;

  Execution(String id, CompletableFuture<ExecutionResult> result, AgentExecutor.Task task) {
    this.id = id;
    this.result = result;
    this.task = task;
  }

  public String id() {
    return id;
  }

  /** The current state; {@link TaskState#PENDING} until its thread has picked it up. */
  public TaskState state() {
    TaskState s = task.state();
    return s == null ? TaskState.PENDING : s;
  }

  /**
   * Completes with the result, or exceptionally with an {@link ExecutionFailedException} (an {@link
   * ExecutionCancelledException} after {@link #cancel()}).
   */
  public CompletableFuture<ExecutionResult> result() {
    return result;
  }

  /**
   * Stops the execution: the command's process tree is killed if it runs, its VM is destroyed. Does
   * nothing once it has ended.
   */
  public void cancel() {
    task.cancel();
  }
}
