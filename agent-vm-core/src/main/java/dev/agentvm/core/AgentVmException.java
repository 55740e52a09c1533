package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/** Root of the unchecked exceptions agent-vm throws for hypervisor and VM failures. */
public class AgentVmException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public AgentVmException(String message) {
    super(message);
  }

  public AgentVmException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
