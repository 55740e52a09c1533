package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/** An operation is not allowed in the VM's current state, e.g. starting a running VM. */
public class VmStateException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public VmStateException(String message) {
    super(message);
  }

  public VmStateException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
