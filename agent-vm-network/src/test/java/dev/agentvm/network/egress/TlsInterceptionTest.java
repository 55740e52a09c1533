package dev.agentvm.network.egress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyStore;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A terminated tunnel in-process: the "guest" is a TLS client that trusts the egress CA only, the
 * "server" a TLS server whose certificate the host's trust holds.
 */
@Timeout(60)
class TlsInterceptionTest {
  private static final String VALUE = "v4lue-" + System.nanoTime();
  private static final EgressSecret KEY =
      EgressSecret.of("API_KEY", VALUE)
          .boundTo("api.test")
          .header("Authorization", "Bearer {value}");

  @TempDir Path tmp;
  private EgressCa publicCa;
  private HttpsServer server;
  private final List<String> saw = new CopyOnWriteArrayList<>();
  private final ExecutorService threads = Executors.newCachedThreadPool();

  @BeforeEach
  void setUp() throws IOException {
    publicCa = EgressCa.create();
    server = HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 4);
    server.setHttpsConfigurator(new HttpsConfigurator(publicCa.serverContext("api.test")));
    server.createContext(
        "/",
        x -> {
          byte[] in = x.getRequestBody().readAllBytes();
          saw.add(
              x.getRequestMethod()
                  + " "
                  + x.getRequestURI()
                  + " auth="
                  + x.getRequestHeaders().getFirst("Authorization")
                  + " key="
                  + x.getRequestHeaders().getFirst("X-Key")
                  + " body="
                  + new String(in, StandardCharsets.UTF_8));
          byte[] body = "ok".getBytes(StandardCharsets.UTF_8);
          x.sendResponseHeaders(200, body.length);
          x.getResponseBody().write(body);
          x.close();
        });
    server.start();
  }

  @AfterEach
  void tearDown() {
    server.stop(0);
    threads.shutdownNow();
  }

  private static SSLContext trusting(EgressCa ca) throws Exception {
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    ks.setCertificateEntry("ca", ca.certificate());
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(ks);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return ctx;
  }

  private Socket toServer() throws IOException {
    return new Socket(InetAddress.getLoopbackAddress(), server.getAddress().getPort());
  }

  private TlsInterception open(EgressCa egressCa, SSLContext upstream, String host)
      throws IOException {
    return TlsInterception.open(
        toServer(),
        host,
        server.getAddress().getPort(),
        List.of(KEY),
        egressCa,
        upstream,
        Duration.ofSeconds(10));
  }

  /** The guest's TLS over the guest end, verifying the name against the egress CA. */
  private static SSLSocket guest(TlsInterception t, EgressCa egressCa) throws Exception {
    SSLSocket c =
        (SSLSocket)
            trusting(egressCa)
                .getSocketFactory()
                .createSocket(t.guestEnd(), "api.test", t.guestEnd().getPort(), false);
    SSLParameters p = c.getSSLParameters();
    p.setEndpointIdentificationAlgorithm("HTTPS");
    c.setSSLParameters(p);
    c.startHandshake();
    return c;
  }

  /** One response: status line and its Content-Length body. */
  private static String response(InputStream in) throws IOException {
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    while (!head.toString(StandardCharsets.ISO_8859_1).endsWith("\r\n\r\n")) {
      int b = in.read();
      if (b < 0) {
        return "EOF " + head.toString(StandardCharsets.ISO_8859_1);
      }
      head.write(b);
    }
    String h = head.toString(StandardCharsets.ISO_8859_1);
    int length = 0;
    for (String line : h.split("\r\n", -1)) {
      if (line.toLowerCase(java.util.Locale.ROOT).startsWith("content-length:")) {
        length = Integer.parseInt(line.substring(15).strip());
      }
    }
    return h.substring(0, h.indexOf("\r\n"))
        + " "
        + new String(in.readNBytes(length), StandardCharsets.UTF_8);
  }

  /** One connection, one request: what the guest reads back. */
  private String exchange(EgressCa egressCa, String request, List<String> refused)
      throws Exception {
    try (TlsInterception t = open(egressCa, trusting(publicCa), "api.test")) {
      t.start(threads, refused::add); // the terminating side's handshake runs in its thread
      try (SSLSocket g = guest(t, egressCa)) {
        g.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
        g.getOutputStream().flush();
        return response(g.getInputStream());
      }
    }
  }

  @Test
  void theBoundServerGetsTheValueInTheNamedHeadersOnly() throws Exception {
    EgressCa egressCa = EgressCa.loadOrCreate(tmp.resolve("ca"));
    List<String> refused = new CopyOnWriteArrayList<>();
    String p = KEY.placeholder();
    assertEquals(
        "HTTP/1.1 200 OK ok",
        exchange(
            egressCa, "GET /one HTTP/1.1\r\nHost: api.test\r\nX-Key: " + p + "\r\n\r\n", refused));
    assertEquals(
        "HTTP/1.1 200 OK ok",
        exchange(
            egressCa,
            "POST /two HTTP/1.1\r\nHost: api.test\r\nContent-Length: "
                + p.length()
                + "\r\n\r\n"
                + p,
            refused));
    String other = exchange(egressCa, "GET /x HTTP/1.1\r\nHost: evil.test\r\n\r\n", refused);
    assertTrue(other.startsWith("HTTP/1.1 421 Misdirected Request"), other);
    assertEquals(
        List.of(
            "GET /one auth=Bearer " + VALUE + " key=" + p + " body=",
            "POST /two auth=Bearer " + VALUE + " key=null body=" + p),
        saw,
        "X-Key is not named by this secret; a body is never touched");
    assertEquals(1, refused.size(), refused.toString());
    assertTrue(refused.get(0).contains("another site"), refused.get(0));
  }

  @Test
  void aServerTheHostDoesNotTrustOrThatIsAnotherNameIsNeverSentAByte() throws Exception {
    EgressCa egressCa = EgressCa.create();
    IOException untrusted =
        assertThrows(
            IOException.class, () -> open(egressCa, trusting(EgressCa.create()), "api.test"));
    assertTrue(String.valueOf(untrusted.getMessage()).contains("PKIX"), untrusted.toString());
    IOException otherName =
        assertThrows(IOException.class, () -> open(egressCa, trusting(publicCa), "other.test"));
    assertTrue(String.valueOf(otherName.getMessage()).contains("other.test"), otherName.toString());
    assertEquals(List.of(), saw);
  }

  @Test
  void theCaIsKeptWithAKeyOnlyItsOwnerReads() throws Exception {
    Path dir = tmp.resolve("kept");
    EgressCa first = EgressCa.loadOrCreate(dir);
    EgressCa again = EgressCa.loadOrCreate(dir);
    assertEquals(first.certificate(), again.certificate());
    assertTrue(again.isKey(first.certificate().getPublicKey()));
    assertEquals(
        "rw-------",
        PosixFilePermissions.toString(
            Files.getPosixFilePermissions(dir.resolve(EgressCa.KEY_FILE))));
    assertNotEquals(first.certificate(), EgressCa.create().certificate());
    assertTrue(first.certificatePem().startsWith("-----BEGIN CERTIFICATE-----\n"));
    // a leaf is made once per name and kept
    assertTrue(first.serverContext("a.test") == first.serverContext("a.test"));
    Files.writeString(dir.resolve(EgressCa.KEY_FILE), "garbage");
    assertThrows(IOException.class, () -> EgressCa.loadOrCreate(dir));
  }
}
