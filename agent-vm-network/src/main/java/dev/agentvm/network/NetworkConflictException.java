package dev.agentvm.network;

import dev.agentvm.core.AgentVmException;

/**
 * A network or filter of the wanted name exists but was not made by agent-vm, or differs from what
 * is wanted while VMs may use it. agent-vm never changes or removes what it did not create.
 */
public class NetworkConflictException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public NetworkConflictException(String message) {
    super(message);
  }
}
