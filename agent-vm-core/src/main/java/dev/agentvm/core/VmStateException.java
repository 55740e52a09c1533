package dev.agentvm.core;

/** An operation is not allowed in the VM's current state, e.g. starting a running VM. */
public class VmStateException extends AgentVmException {
  public VmStateException(String message) {
    super(message);
  }

  public VmStateException(String message, Throwable cause) {
    super(message, cause);
  }
}
