package dev.agentvm.execution.sandbox;

/** No sandbox has this id on this host (never created, closed, or reaped). */
public class NoSuchSandboxException extends SandboxException {
  private static final long serialVersionUID = 1L;

  public NoSuchSandboxException(String id) {
    super("no sandbox " + id);
  }
}
