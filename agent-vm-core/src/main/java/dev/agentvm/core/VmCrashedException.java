package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/**
 * The VM stopped while work ran in it: its emulator process died or the guest crashed. The console
 * log usually says why.
 */
public class VmCrashedException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public VmCrashedException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
