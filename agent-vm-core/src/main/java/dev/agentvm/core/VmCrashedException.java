package dev.agentvm.core;

/**
 * The VM stopped while work ran in it: its emulator process died or the guest crashed. The console
 * log usually says why.
 */
public class VmCrashedException extends AgentVmException {
  public VmCrashedException(String message, Throwable cause) {
    super(message, cause);
  }
}
