package dev.agentvm.core;

/** The named VM (libvirt domain) does not exist. */
public class NoSuchVmException extends AgentVmException {
  public NoSuchVmException(String message, Throwable cause) {
    super(message, cause);
  }
}
