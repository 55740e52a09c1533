package dev.agentvm.core;

/** A hypervisor operation failed; the message names the operation and libvirt's reason. */
public class HypervisorException extends AgentVmException {
  public HypervisorException(String message, Throwable cause) {
    super(message, cause);
  }
}
