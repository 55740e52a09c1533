package dev.agentvm.core;

/** How {@link VM#shutdown} ended. */
public enum ShutdownResult {
  /** The VM was not running. */
  ALREADY_STOPPED,
  /** The guest powered off by itself within the grace period. */
  GRACEFUL,
  /** The grace period passed and the VM was destroyed. */
  FORCED
}
