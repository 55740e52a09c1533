package dev.agentvm.core.agent;

import java.io.IOException;
import org.jspecify.annotations.Nullable;

/** A failure talking to the guest agent. Subclasses say which kind. */
public class AgentException extends IOException {
  private static final long serialVersionUID = 1L;

  public AgentException(String message) {
    super(message);
  }

  public AgentException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
