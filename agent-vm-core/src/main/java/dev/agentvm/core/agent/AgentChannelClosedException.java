package dev.agentvm.core.agent;

import org.jspecify.annotations.Nullable;

/**
 * The channel to the agent closed (the VM stopped, or the client was closed) before an answer came.
 */
public class AgentChannelClosedException extends AgentException {
  private static final long serialVersionUID = 1L;

  public AgentChannelClosedException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
