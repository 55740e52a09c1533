package dev.agentvm.core.spi;

/**
 * A domain's state as reported by the hypervisor, with whether a shut-off domain stopped because it
 * crashed (or its emulator process died) rather than because it was asked to.
 */
public record DomainStatus(Kind kind, boolean crashed) {
  /** Raw hypervisor states. */
  public enum Kind {
    RUNNING,
    PAUSED,
    SHUTTING_DOWN,
    SHUTOFF,
    CRASHED,
    NOT_FOUND,
    OTHER
  }

  public static DomainStatus of(Kind kind) {
    return new DomainStatus(kind, kind == Kind.CRASHED);
  }
}
