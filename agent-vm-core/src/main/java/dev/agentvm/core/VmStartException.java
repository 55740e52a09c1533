package dev.agentvm.core;

/** A VM could not be started, or did not become ready in time. */
public class VmStartException extends AgentVmException {
  public VmStartException(String message, Throwable cause) {
    super(message, cause);
  }
}
