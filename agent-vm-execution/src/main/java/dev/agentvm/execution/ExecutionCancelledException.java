package dev.agentvm.execution;

/** The execution was cancelled before it ended. */
public class ExecutionCancelledException extends ExecutionFailedException {
  private static final long serialVersionUID = 1L;

  public ExecutionCancelledException(String executionId, String step) {
    super(executionId, step, "cancelled", null);
  }
}
