package dev.agentvm.execution;

import dev.agentvm.core.AgentVmException;

/** No VM became free within the acquire timeout, or making one failed (then the cause says why). */
public class PoolExhaustedException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public PoolExhaustedException(String message) {
    super(message);
  }

  public PoolExhaustedException(String message, Throwable cause) {
    super(message, cause);
  }
}
