package dev.agentvm.core.agent;

/**
 * The channel to the agent closed (the VM stopped, or the client was closed) before an answer came.
 */
public class AgentChannelClosedException extends AgentException {
  public AgentChannelClosedException(String message, Throwable cause) {
    super(message, cause);
  }
}
