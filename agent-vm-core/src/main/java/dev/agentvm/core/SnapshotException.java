package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/**
 * A snapshot or memory image could not be taken, found or restored; the message says why and what
 * to do.
 */
public class SnapshotException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public SnapshotException(String message) {
    super(message);
  }

  public SnapshotException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
