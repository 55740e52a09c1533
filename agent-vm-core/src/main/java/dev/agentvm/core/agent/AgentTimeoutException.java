package dev.agentvm.core.agent;

/** The agent did not answer within the call's deadline. */
public class AgentTimeoutException extends AgentException {
  public AgentTimeoutException(String message) {
    super(message);
  }
}
