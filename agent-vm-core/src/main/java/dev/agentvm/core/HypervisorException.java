package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/** A hypervisor operation failed; the message names the operation and libvirt's reason. */
public class HypervisorException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public HypervisorException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
