package dev.agentvm.core;

/** Root of the unchecked exceptions agent-vm throws for hypervisor and VM failures. */
public class AgentVmException extends RuntimeException {
  public AgentVmException(String message) {
    super(message);
  }

  public AgentVmException(String message, Throwable cause) {
    super(message, cause);
  }
}
