package dev.agentvm.core;

import org.jspecify.annotations.Nullable;

/** The hypervisor at a URI could not be reached or answered with a connection-level error. */
public class ConnectionException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  private final String uri;

  public ConnectionException(String uri, String message, @Nullable Throwable cause) {
    super("libvirt at " + uri + ": " + message, cause);
    this.uri = uri;
  }

  public String uri() {
    return uri;
  }
}
