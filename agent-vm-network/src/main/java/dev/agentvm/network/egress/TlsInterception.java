package dev.agentvm.network.egress;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * One CONNECT tunnel to a domain a secret is bound to, terminated on the host. The guest's TLS ends
 * at a certificate from the {@link EgressCa}; the host opens its own TLS to the server, verified
 * against the host's trust ({@code upstream}), and passes the requests between them with the
 * secrets put in ({@link SecretHeads}).
 *
 * <p>The guest's bytes reach the terminating socket through a loopback pair made for this tunnel
 * alone (the JDK's TLS runs on sockets): the listening end takes one connection, the one this
 * object made, checked by its port, and closes.
 */
final class TlsInterception implements Closeable {
  private static final int MAX_BODY_COPY = 32 * 1024;

  private final Socket server;
  private final SSLSocket up;
  private final Socket guestEnd;
  private final Socket accepted;
  private final SSLSocket terminated;
  private final String host;
  private final int port;
  private final List<EgressSecret> secrets;
  private final AtomicBoolean closed = new AtomicBoolean();

  private TlsInterception(
      Socket server,
      SSLSocket up,
      Socket guestEnd,
      Socket accepted,
      SSLSocket terminated,
      String host,
      int port,
      List<EgressSecret> secrets) {
    this.server = server;
    this.up = up;
    this.guestEnd = guestEnd;
    this.accepted = accepted;
    this.terminated = terminated;
    this.host = host;
    this.port = port;
    this.secrets = List.copyOf(secrets);
  }

  /**
   * Opens TLS to the server over {@code server} (verified: a server the host does not trust fails
   * here) and the loopback pair the guest's bytes go into.
   *
   * @throws IOException with the reason, e.g. the server's certificate is not trusted
   */
  static TlsInterception open(
      Socket server,
      String host,
      int port,
      List<EgressSecret> secrets,
      EgressCa ca,
      SSLContext upstream,
      Duration timeout)
      throws IOException {
    SSLSocket up = (SSLSocket) upstream.getSocketFactory().createSocket(server, host, port, true);
    Socket guestEnd = null;
    Socket accepted = null;
    try {
      SSLParameters p = up.getSSLParameters();
      p.setEndpointIdentificationAlgorithm("HTTPS");
      p.setApplicationProtocols(new String[] {"http/1.1"});
      up.setSSLParameters(p);
      up.setSoTimeout((int) Math.max(1, timeout.toMillis()));
      up.startHandshake();
      up.setSoTimeout(0);
      InetAddress lo = InetAddress.getLoopbackAddress();
      try (ServerSocket listener = new ServerSocket(0, 4, lo)) {
        listener.setSoTimeout((int) Math.max(1, timeout.toMillis()));
        guestEnd = new Socket();
        guestEnd.connect(
            new java.net.InetSocketAddress(lo, listener.getLocalPort()),
            (int) Math.max(1, timeout.toMillis()));
        for (int i = 0; i < 4 && accepted == null; i++) {
          Socket a = listener.accept();
          if (a.getPort() == guestEnd.getLocalPort()) {
            accepted = a;
          } else {
            a.close(); // another local process: not ours to serve
          }
        }
      }
      if (accepted == null) {
        throw new IOException("the loopback pair for the TLS termination was taken");
      }
      SSLSocket terminated =
          (SSLSocket)
              ca.serverContext(host)
                  .getSocketFactory()
                  .createSocket(accepted, host, accepted.getPort(), true);
      terminated.setUseClientMode(false);
      SSLParameters tp = terminated.getSSLParameters();
      tp.setApplicationProtocols(new String[] {"http/1.1"});
      terminated.setSSLParameters(tp);
      return new TlsInterception(server, up, guestEnd, accepted, terminated, host, port, secrets);
    } catch (IOException | RuntimeException e) {
      closeQuietly(up);
      if (guestEnd != null) {
        closeQuietly(guestEnd);
      }
      if (accepted != null) {
        closeQuietly(accepted);
      }
      throw e;
    }
  }

  /** The socket whose other end the guest's tunnel bytes go into (plain TCP). */
  Socket guestEnd() {
    return guestEnd;
  }

  /**
   * Starts passing requests (with the secrets) and responses; {@code refused} hears why a request
   * was not passed on (the connection then ends).
   */
  void start(Executor threads, Consumer<String> refused) {
    threads.execute(() -> requests(refused));
    threads.execute(this::responses);
  }

  /**
   * The first request with the secrets, then the rest of the guest's bytes as they are: the first
   * request asks the server to close after it, so nothing later is read as a request of its own.
   */
  private void requests(Consumer<String> refused) {
    try {
      InputStream in = terminated.getInputStream();
      OutputStream out = up.getOutputStream();
      Buffered buf = new Buffered(in);
      byte[] head = buf.head();
      if (head.length > 0) {
        byte[] rewritten;
        try {
          rewritten = SecretHeads.rewrite(head, host, port, secrets);
        } catch (SecretHeads.Refused e) {
          String why = String.valueOf(e.getMessage());
          refused.accept(why);
          answer(e.status, why);
          finish();
          return;
        }
        out.write(rewritten);
        out.flush();
        buf.copyRest(out);
      }
      try {
        up.shutdownOutput(); // the server answers what it has and closes
      } catch (IOException | UnsupportedOperationException e) {
        // it closes when the guest's side ends
      }
    } catch (IOException e) {
      close();
    } catch (Buffered.TooLarge e) {
      refused.accept(String.valueOf(e.getMessage()));
      answer(431, String.valueOf(e.getMessage()));
      finish();
    }
  }

  private void responses() {
    try {
      InputStream in = up.getInputStream();
      OutputStream out = terminated.getOutputStream();
      byte[] b = new byte[MAX_BODY_COPY];
      int n;
      while ((n = in.read(b)) >= 0) {
        out.write(b, 0, n);
        out.flush();
      }
    } catch (IOException e) {
      // ends below
    } finally {
      finish();
    }
  }

  private void answer(int status, String why) {
    byte[] body = (why + "\n").getBytes(StandardCharsets.UTF_8);
    String head =
        "HTTP/1.1 "
            + status
            + switch (status) {
              case 405 -> " Method Not Allowed";
              case 421 -> " Misdirected Request";
              case 431 -> " Request Header Fields Too Large";
              default -> " Bad Request";
            }
            + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
            + body.length
            + "\r\nConnection: close\r\n\r\n";
    try {
      OutputStream o = terminated.getOutputStream();
      o.write(head.getBytes(StandardCharsets.US_ASCII));
      o.write(body);
      o.flush();
    } catch (IOException e) {
      // the guest went away
    }
  }

  /**
   * Ends both TLS connections in order, from a pump thread: the guest's TLS is closed first, so its
   * last bytes (a response, a refusal) are followed by a proper end.
   */
  private void finish() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    closeQuietly(terminated);
    closeQuietly(up);
  }

  /**
   * Ends both connections at once (a reset, the idle watchdog), also when {@link #finish} is under
   * way and waits. The guest's end of the loopback pair is left to its owner.
   */
  @Override
  public void close() {
    // the plain sockets first: closing a TLS socket waits for a writer blocked in it (a server
    // that stopped reading), and a caller here may be the idle watchdog every proxy shares
    closeQuietly(server);
    closeQuietly(accepted);
    if (closed.compareAndSet(false, true)) {
      closeQuietly(terminated);
      closeQuietly(up);
    }
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // nothing left to do
    }
  }

  /** Reads request heads and bodies from the terminated stream. */
  private static final class Buffered {
    static final class TooLarge extends Exception {
      private static final long serialVersionUID = 1L;

      TooLarge(String why) {
        super(why);
      }
    }

    private final InputStream in;
    private byte[] buf = new byte[4096];
    private int len;

    Buffered(InputStream in) {
      this.in = in;
    }

    /** The next head through its blank line; empty at the end of the stream before any byte. */
    byte[] head() throws IOException, TooLarge {
      int scanned = 0;
      while (true) {
        int at = ProxyRequest.headEnd(buf, Math.max(0, scanned - 3), len);
        if (at >= 0) {
          byte[] h = Arrays.copyOf(buf, at);
          System.arraycopy(buf, at, buf, 0, len - at);
          len -= at;
          return h;
        }
        scanned = len;
        if (len >= ProxyRequest.MAX_HEAD) {
          throw new TooLarge("a request head larger than " + ProxyRequest.MAX_HEAD + " bytes");
        }
        if (len == buf.length) {
          buf = Arrays.copyOf(buf, Math.min(buf.length * 2, ProxyRequest.MAX_HEAD + 4));
        }
        int n = in.read(buf, len, buf.length - len);
        if (n < 0) {
          if (len == 0) {
            return new byte[0];
          }
          throw new IOException("the guest closed inside a request head");
        }
        len += n;
      }
    }

    /** Copies everything that is left, as it is. */
    void copyRest(OutputStream out) throws IOException {
      if (len > 0) {
        out.write(buf, 0, len);
        len = 0;
      }
      in.transferTo(out);
      out.flush();
    }
  }
}
