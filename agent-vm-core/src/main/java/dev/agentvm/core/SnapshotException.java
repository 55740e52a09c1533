package dev.agentvm.core;

/**
 * A snapshot or memory image could not be taken, found or restored; the message says why and what
 * to do.
 */
public class SnapshotException extends AgentVmException {
  public SnapshotException(String message) {
    super(message);
  }

  public SnapshotException(String message, Throwable cause) {
    super(message, cause);
  }
}
