package dev.agentvm.execution.sandbox;

/** Where a sandbox is in its life. */
public enum SandboxState {
  /** Its VM runs on this host; commands and files are served. */
  RUNNING,
  /**
   * Memory and disk saved on the host, no VM and no host RAM; resumed by any call or {@code
   * resume()}.
   */
  PAUSED,
  /** Closed: everything it owned is removed. */
  CLOSED
}
