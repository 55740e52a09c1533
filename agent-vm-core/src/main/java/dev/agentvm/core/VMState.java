package dev.agentvm.core;

import java.util.EnumSet;
import java.util.Set;

/**
 * The lifecycle of a {@link VM}. Operations check the current state and refuse with {@link
 * VmStateException} where a transition is not allowed.
 *
 * <pre>
 *  DEFINED --start--> RUNNING --shutdown--> STOPPING --> STOPPED --start--> RUNNING
 *     |                 |  ^                               |
 *     |              pause resume                           |
 *     |                 v  |                                |
 *     |               PAUSED          (QEMU died) CRASHED   |
 *     +------undefine------------------------------+--------+--> UNDEFINED (final)
 * </pre>
 */
public enum VMState {
  /** Defined in libvirt, never started. */
  DEFINED,
  RUNNING,
  PAUSED,
  /** A graceful shutdown was requested and the guest has not stopped yet. */
  STOPPING,
  STOPPED,
  /** The guest or its QEMU process died without being asked to stop. */
  CRASHED,
  /** No longer defined in libvirt. Final. */
  UNDEFINED;

  /** Whether the VM may move from this state to {@code next}. */
  public boolean canTransitionTo(VMState next) {
    return allowedNext().contains(next);
  }

  Set<VMState> allowedNext() {
    return switch (this) {
      case DEFINED, STOPPED -> EnumSet.of(RUNNING, UNDEFINED);
      case RUNNING -> EnumSet.of(PAUSED, STOPPING, STOPPED, CRASHED);
      case PAUSED -> EnumSet.of(RUNNING, STOPPING, STOPPED, CRASHED);
      case STOPPING -> EnumSet.of(STOPPED, CRASHED);
      case CRASHED -> EnumSet.of(RUNNING, STOPPED, UNDEFINED);
      case UNDEFINED -> EnumSet.noneOf(VMState.class);
    };
  }

  /** Whether QEMU is running for a VM in this state. */
  public boolean isActive() {
    return this == RUNNING || this == PAUSED || this == STOPPING;
  }
}
