package dev.agentvm.core.agent;

import dev.agentvm.protocol.ErrorCode;

/** The agent answered a request with an ERROR frame. */
public class AgentErrorException extends AgentException {
  private static final long serialVersionUID = 1L;

  private final ErrorCode code;

  public AgentErrorException(ErrorCode code, String message) {
    super("agent error " + code + ": " + message);
    this.code = code;
  }

  public ErrorCode code() {
    return code;
  }
}
