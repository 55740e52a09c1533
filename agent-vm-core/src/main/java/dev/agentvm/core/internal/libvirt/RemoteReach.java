package dev.agentvm.core.internal.libvirt;

import dev.agentvm.core.ConnectionException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.OptionalInt;
import org.libvirt.LibvirtException;

/**
 * A quick look whether a remote libvirt host answers at all, before libvirt's own connect, which
 * blocks for the kernel's TCP timeout (about two minutes) on a host that drops packets: the port of
 * the URI's transport must accept a TCP connection within {@link #TIMEOUT}.
 */
final class RemoteReach {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(RemoteReach.class);

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

  /** How long a remote libvirtd may take to answer a new connection. */
  static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);

  /** Opens something on a connection to a remote host. */
  @FunctionalInterface
  interface Opener<T> {
    T open() throws LibvirtException;
  }

  /**
   * Runs {@code opener} (a libvirt connect) within {@link #CONNECT_TIMEOUT} for a remote URI: a
   * host whose kernel accepts the TCP connection while its libvirtd hangs would block libvirt's
   * connect for ever. On time out the caller gets a {@link ConnectionException}; the connect goes
   * on in the background and {@code late} disposes of what it makes, if it ever does. A local URI
   * connects directly.
   */
  static <T> T within(String uri, Opener<T> opener, java.util.function.Consumer<T> late)
      throws LibvirtException {
    if (HostVolumes.isLocal(uri)) {
      return opener.open();
    }
    java.util.concurrent.CompletableFuture<T> f = new java.util.concurrent.CompletableFuture<>();
    java.util.concurrent.atomic.AtomicBoolean abandoned =
        new java.util.concurrent.atomic.AtomicBoolean();
    Thread t =
        new Thread(
            () -> {
              try {
                T made = opener.open();
                if (!f.complete(made) || abandoned.get()) {
                  late.accept(made);
                }
              } catch (LibvirtException | RuntimeException | Error e) {
                f.completeExceptionally(e);
              }
            },
            "agentvm-libvirt-connect");
    t.setDaemon(true);
    t.start();
    try {
      return f.get(CONNECT_TIMEOUT.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.TimeoutException e) {
      abandoned.set(true);
      if (f.isDone() && !f.isCompletedExceptionally()) {
        return f.join(); // made just now
      }
      throw new ConnectionException(
          uri,
          "host accepted a connection but libvirt did not answer within "
              + CONNECT_TIMEOUT.toSeconds()
              + " s",
          e);
    } catch (java.util.concurrent.ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof LibvirtException le) {
        throw le;
      }
      if (c instanceof Error err) {
        throw err;
      }
      throw new ConnectionException(uri, "connecting failed: " + c, c);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      abandoned.set(true);
      throw new ConnectionException(uri, "interrupted while connecting", e);
    }
  }

  /**
   * A libvirt connection made by {@code opener}, within {@link #CONNECT_TIMEOUT} for a remote URI;
   * one that completes too late is closed.
   */
  static <C extends org.libvirt.Connect> C connect(String uri, Opener<C> opener)
      throws LibvirtException {
    return within(
        uri,
        opener,
        late -> {
          try {
            late.close();
          } catch (LibvirtException e) {
            LOG.debug("closing a connection made too late: {}", e.getMessage());
          }
        });
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
