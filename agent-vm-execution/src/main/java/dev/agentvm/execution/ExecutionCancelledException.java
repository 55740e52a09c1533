package dev.agentvm.execution;

/** The execution was cancelled before it ended. */
public class ExecutionCancelledException extends ExecutionFailedException {
  public ExecutionCancelledException(String executionId, String step) {
    super(executionId, step, "cancelled", null);
  }
}
