package dev.agentvm.core;

/** The hypervisor at a URI could not be reached or answered with a connection-level error. */
public class ConnectionException extends AgentVmException {
  private final String uri;

  public ConnectionException(String uri, String message, Throwable cause) {
    super("libvirt at " + uri + ": " + message, cause);
    this.uri = uri;
  }

  public String uri() {
    return uri;
  }
}
