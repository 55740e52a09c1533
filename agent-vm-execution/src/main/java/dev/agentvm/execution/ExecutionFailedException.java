package dev.agentvm.execution;

import dev.agentvm.core.AgentVmException;
import org.jspecify.annotations.Nullable;

/**
 * An execution could not be carried out; {@link #step()} says where it failed. Nothing of it is
 * left behind: its VM is destroyed, its workspace deleted.
 */
public class ExecutionFailedException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  private final String executionId;
  private final String step;

  public ExecutionFailedException(
      String executionId, String step, @Nullable String message, @Nullable Throwable cause) {
    super("execution " + executionId + " failed at " + step + ": " + message, cause);
    this.executionId = executionId;
    this.step = step;
  }

  public String executionId() {
    return executionId;
  }

  /** {@code acquire}, {@code inject}, {@code exec}, {@code extract} or {@code release}. */
  public String step() {
    return step;
  }
}
