package dev.agentvm.execution;

import java.util.EnumSet;
import java.util.Set;

/**
 * Where an execution is. PENDING -> PREPARING -> RUNNING -> COMPLETED | FAILED | TIMED_OUT |
 * CANCELLED; FAILED and CANCELLED can also be reached from PENDING and PREPARING.
 */
public enum TaskState {
  /** Submitted, waiting for a VM. */
  PENDING,
  /** A VM is assigned; input files are being put in place. */
  PREPARING,
  /** The code runs in the guest. */
  RUNNING,
  /** The code ran to its end (whatever its exit code). */
  COMPLETED,
  /** The infrastructure failed: no VM, a crashed VM, a lost channel, an output limit. */
  FAILED,
  /** The code outlived its timeout and was stopped. */
  TIMED_OUT,
  /** The caller cancelled it. */
  CANCELLED;

  /** Whether nothing follows this state. */
  public boolean isTerminal() {
    return this == COMPLETED || this == FAILED || this == TIMED_OUT || this == CANCELLED;
  }

  /** Whether {@code next} may follow this state. */
  public boolean canTransitionTo(TaskState next) {
    return allowed().contains(next);
  }

  private Set<TaskState> allowed() {
    return switch (this) {
      case PENDING -> EnumSet.of(PREPARING, FAILED, CANCELLED);
      case PREPARING -> EnumSet.of(RUNNING, FAILED, CANCELLED);
      case RUNNING -> EnumSet.of(COMPLETED, FAILED, TIMED_OUT, CANCELLED);
      case COMPLETED, FAILED, TIMED_OUT, CANCELLED -> EnumSet.noneOf(TaskState.class);
    };
  }
}
