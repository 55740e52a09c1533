package dev.agentvm.execution.sandbox;

import dev.agentvm.core.AgentVmException;
import org.jspecify.annotations.Nullable;

/** A sandbox operation failed; the message names the sandbox and the step. */
public class SandboxException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public SandboxException(String message) {
    super(message);
  }

  public SandboxException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
