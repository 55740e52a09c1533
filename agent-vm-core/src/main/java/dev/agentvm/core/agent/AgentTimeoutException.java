package dev.agentvm.core.agent;

/** The agent did not answer within the call's deadline. */
public class AgentTimeoutException extends AgentException {
  private static final long serialVersionUID = 1L;

  public AgentTimeoutException(String message) {
    super(message);
  }
}
