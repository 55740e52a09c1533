package dev.agentvm.core.agent;

/**
 * The guest sent more than the host allowed (a file larger than the limit of its copy); what it
 * sent beyond the limit was not kept.
 */
public class AgentLimitException extends AgentException {
  private static final long serialVersionUID = 1L;

  public AgentLimitException(String message) {
    super(message);
  }
}
