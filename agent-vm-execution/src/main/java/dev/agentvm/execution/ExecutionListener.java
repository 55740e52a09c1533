package dev.agentvm.execution;

import org.jspecify.annotations.Nullable;

/**
 * Hears an execution move from state to state. Called on the thread that drives the execution: must
 * be fast, must not throw (what it throws is logged and ignored).
 */
@FunctionalInterface
public interface ExecutionListener {
  ExecutionListener NONE = (id, from, to, vm) -> {};

  /**
   * Called after each change of state.
   *
   * @param executionId the execution
   * @param from the state before ({@code null} for the first event, PENDING)
   * @param to the new state
   * @param vm the VM running it, or empty before one is assigned
   */
  void onStateChange(String executionId, @Nullable TaskState from, TaskState to, String vm);
}
