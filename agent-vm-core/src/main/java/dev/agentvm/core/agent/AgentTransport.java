package dev.agentvm.core.agent;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * How bytes reach the guest agent: the virtio-serial UNIX socket, or AF_VSOCK where the host has
 * vhost-vsock. The protocol above does not know which one it runs on.
 */
public interface AgentTransport {
  /**
   * Opens one byte stream to the agent.
   *
   * @throws IOException if the endpoint is not there (yet) or refuses
   */
  Connection connect() throws IOException;

  /** A short description for logs and errors. */
  String describe();

  /** One open byte stream. Reading and writing may happen on different threads at once. */
  interface Connection extends Closeable {
    InputStream input();

    OutputStream output();
  }
}
