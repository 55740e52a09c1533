package dev.agentvm.core.agent;

import java.io.IOException;

/** A failure talking to the guest agent. Subclasses say which kind. */
public class AgentException extends IOException {
  public AgentException(String message) {
    super(message);
  }

  public AgentException(String message, Throwable cause) {
    super(message, cause);
  }
}
