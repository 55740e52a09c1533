package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/** A VM could not be started, or did not become ready in time. */
public class VmStartException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public VmStartException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
