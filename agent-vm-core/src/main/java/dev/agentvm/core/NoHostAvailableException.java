package dev.agentvm.core;

/** No host of a {@link HostSet} could take a VM; the message names each host and why. */
public class NoHostAvailableException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public NoHostAvailableException(String message) {
    super(message);
  }
}
