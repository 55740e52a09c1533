package dev.agentvm.core.agent;

import dev.agentvm.internal.LogText;
import dev.agentvm.protocol.ErrorCode;

/**
 * The agent answered a request with an ERROR frame. The guest's text is cut to 512 characters with
 * control characters escaped: it is attacker-controlled and ends up in logs.
 */
public class AgentErrorException extends AgentException {
  private static final long serialVersionUID = 1L;

  private final ErrorCode code;

  public AgentErrorException(ErrorCode code, String message) {
    super("agent error " + code + ": " + LogText.clean(message));
    this.code = code;
  }

  public ErrorCode code() {
    return code;
  }
}
