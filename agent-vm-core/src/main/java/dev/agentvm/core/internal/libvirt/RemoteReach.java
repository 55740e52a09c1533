package dev.agentvm.core.internal.libvirt;

import dev.agentvm.core.ConnectionException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.OptionalInt;

/**
 * A quick look whether a remote libvirt host answers at all, before libvirt's own connect, which
 * blocks for the kernel's TCP timeout (about two minutes) on a host that drops packets: the port of
 * the URI's transport must accept a TCP connection within {@link #TIMEOUT}.
 */
final class RemoteReach {
  static final Duration TIMEOUT = Duration.ofSeconds(3);

  private RemoteReach() {}

  /**
   * Returns if {@code uri} is local, uses a transport this cannot check, or its host accepts a
   * connection on the transport's port.
   *
   * @throws ConnectionException naming the URI, the address and why, if the host does not answer
   */
  @edu.umd.cs.findbugs.annotations.SuppressFBWarnings(
      value = "UNENCRYPTED_SOCKET",
      justification = "a TCP handshake only, closed at once; nothing is sent")
  static void check(String uri) {
    if (HostVolumes.isLocal(uri)) {
      return;
    }
    URI u;
    try {
      u = new URI(uri);
    } catch (URISyntaxException e) {
      return; // libvirt will say what is wrong with it
    }
    String host = u.getHost();
    OptionalInt port = port(u);
    if (host == null || port.isEmpty()) {
      return;
    }
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(host, port.getAsInt()), (int) TIMEOUT.toMillis());
    } catch (IOException e) {
      throw new ConnectionException(
          uri,
          "host does not answer at "
              + host
              + ":"
              + port.getAsInt()
              + " within "
              + TIMEOUT.toSeconds()
              + " s ("
              + e.getMessage()
              + ")",
          e);
    }
  }

  /** The URI's port, else its transport's default (libvirt's 16509 / 16514, SSH's 22). */
  static OptionalInt port(URI u) {
    if (u.getPort() > 0) {
      return OptionalInt.of(u.getPort());
    }
    String scheme = u.getScheme() == null ? "" : u.getScheme();
    int plus = scheme.indexOf('+');
    String transport = plus < 0 ? "tls" : scheme.substring(plus + 1);
    return switch (transport) {
      case "tcp" -> OptionalInt.of(16509);
      case "tls" -> OptionalInt.of(16514);
      case "ssh", "libssh", "libssh2" -> OptionalInt.of(22);
      default -> OptionalInt.empty();
    };
  }
}
