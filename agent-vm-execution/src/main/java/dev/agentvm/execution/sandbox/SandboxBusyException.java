package dev.agentvm.execution.sandbox;

/** The sandbox runs and is owned by another live process; only one process drives a sandbox. */
public class SandboxBusyException extends SandboxException {
  private static final long serialVersionUID = 1L;

  public SandboxBusyException(String message) {
    super(message);
  }
}
