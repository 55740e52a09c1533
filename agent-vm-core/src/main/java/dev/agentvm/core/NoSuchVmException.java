package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/** The named VM (libvirt domain) does not exist. */
public class NoSuchVmException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public NoSuchVmException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
