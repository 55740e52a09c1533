package dev.agentvm.network.egress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;

import dev.agentvm.network.egress.ClientHello.Status;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import org.junit.jupiter.api.Test;

/** The SNI reader against the JDK's own ClientHellos, and against anything a guest might send. */
class ClientHelloTest {
  /** The first bytes the JDK's TLS client sends, naming {@code sni} (or nothing when null). */
  static byte[] jdkClientHello(String protocol, String sni) throws Exception {
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, null, null);
    SSLEngine e = ctx.createSSLEngine();
    e.setUseClientMode(true);
    SSLParameters p = e.getSSLParameters();
    p.setProtocols(new String[] {protocol});
    if (sni != null) {
      p.setServerNames(List.of(new SNIHostName(sni)));
    }
    e.setSSLParameters(p);
    ByteBuffer out = ByteBuffer.allocate(e.getSession().getPacketBufferSize());
    e.wrap(ByteBuffer.allocate(0), out);
    out.flip();
    byte[] b = new byte[out.remaining()];
    out.get(b);
    return b;
  }

  @Test
  void readsTheServerNameTheJdksClientSends() throws Exception {
    for (String protocol : List.of("TLSv1.3", "TLSv1.2")) {
      byte[] hello = jdkClientHello(protocol, "api.example.org");
      ClientHello.Parsed p = ClientHello.parse(hello, hello.length);
      assertEquals(Status.SERVER_NAME, p.status(), protocol + ": " + p);
      assertEquals("api.example.org", p.serverName());
      byte[] none = jdkClientHello(protocol, null);
      assertEquals(Status.NO_SERVER_NAME, ClientHello.parse(none, none.length).status());
    }
  }

  @Test
  void everyShortPrefixAsksForMore() throws Exception {
    byte[] hello = jdkClientHello("TLSv1.3", "a.example");
    for (int n = 0; n < hello.length; n++) {
      assertEquals(Status.INCOMPLETE, ClientHello.parse(hello, n).status(), "prefix of " + n);
    }
  }

  @Test
  void plainTextAndOtherRecordsAreNotTls() {
    byte[] get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
    assertEquals(Status.NOT_TLS, ClientHello.parse(get, get.length).status());
    assertEquals(Status.NOT_TLS, ClientHello.parse(get, 1).status(), "one byte tells");
    byte[] alert = {21, 3, 3, 0, 2, 2, 40};
    assertEquals(Status.NOT_TLS, ClientHello.parse(alert, alert.length).status());
    byte[] huge = {22, 3, 1, (byte) 0xff, (byte) 0xff};
    assertEquals(Status.MALFORMED, ClientHello.parse(huge, huge.length).status());
  }

  /** A ClientHello built by hand, with the given server_name extension bodies. */
  static byte[] hello(byte[]... serverNameExtensions) {
    ByteArrayOutputStream ext = new ByteArrayOutputStream();
    for (byte[] sn : serverNameExtensions) {
      ext.writeBytes(new byte[] {0, 0, (byte) (sn.length >> 8), (byte) sn.length});
      ext.writeBytes(sn);
    }
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    body.writeBytes(new byte[] {3, 3});
    body.writeBytes(new byte[32]);
    body.write(0); // session id
    body.writeBytes(new byte[] {0, 2, 0x13, 0x01}); // one suite
    body.writeBytes(new byte[] {1, 0}); // null compression
    byte[] e = ext.toByteArray();
    body.writeBytes(new byte[] {(byte) (e.length >> 8), (byte) e.length});
    body.writeBytes(e);
    byte[] b = body.toByteArray();
    ByteArrayOutputStream rec = new ByteArrayOutputStream();
    int hs = b.length + 4;
    rec.writeBytes(new byte[] {22, 3, 1, (byte) (hs >> 8), (byte) hs, 1, 0});
    rec.writeBytes(new byte[] {(byte) (b.length >> 8), (byte) b.length});
    rec.writeBytes(b);
    return rec.toByteArray();
  }

  static byte[] names(byte[]... entries) {
    ByteArrayOutputStream list = new ByteArrayOutputStream();
    for (byte[] n : entries) {
      list.write(0);
      list.writeBytes(new byte[] {(byte) (n.length >> 8), (byte) n.length});
      list.writeBytes(n);
    }
    byte[] l = list.toByteArray();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(new byte[] {(byte) (l.length >> 8), (byte) l.length});
    out.writeBytes(l);
    return out.toByteArray();
  }

  private static Status parse(byte[] b) {
    return ClientHello.parse(b, b.length).status();
  }

  @Test
  void namesThatBreakTheRulesAreMalformed() {
    byte[] ok = "ok.example".getBytes(StandardCharsets.US_ASCII);
    assertEquals(Status.SERVER_NAME, parse(hello(names(ok))));
    assertEquals(Status.MALFORMED, parse(hello(names(ok), names(ok))), "two extensions");
    assertEquals(Status.MALFORMED, parse(hello(names(ok, ok))), "two host names");
    assertEquals(Status.MALFORMED, parse(hello(names(new byte[0]))), "an empty name");
    assertEquals(
        Status.MALFORMED,
        parse(hello(names("a b".getBytes(StandardCharsets.US_ASCII)))),
        "a space in a name");
    assertEquals(Status.MALFORMED, parse(hello(names(new byte[] {'a', 0, 'b'}))), "a NUL");
    assertEquals(
        Status.MALFORMED, parse(hello(names("é.example".getBytes(StandardCharsets.UTF_8)))));
    byte[] cut = hello(names(ok));
    cut[cut.length - 12] = (byte) 0x7f; // a length that runs past the end
    assertEquals(Status.MALFORMED, parse(cut));
  }

  /** Any bytes at all: a status, never an exception, never a loop. */
  @Test
  void arbitraryBytesNeverThrow() {
    qt().withExamples(2000)
        .forAll(lists().of(integers().between(0, 255)).ofSizeBetween(0, 600))
        .checkAssert(
            l -> {
              byte[] b = new byte[l.size()];
              for (int i = 0; i < b.length; i++) {
                b[i] = (byte) (int) l.get(i);
              }
              if (b.length > 0 && l.size() % 3 == 0) {
                b[0] = 22; // often a handshake record, to get past the first check
              }
              if (b.length > 2 && l.size() % 2 == 0) {
                b[1] = 3;
                b[2] = 1;
              }
              assertNotNull(ClientHello.parse(b, b.length).status());
            });
  }

  /** A real ClientHello with one byte changed anywhere: still a status, never an exception. */
  @Test
  void aRealHelloWithAnyByteChangedNeverThrows() throws Exception {
    byte[] hello = jdkClientHello("TLSv1.3", "x.example.net");
    qt().withExamples(3000)
        .forAll(integers().between(0, hello.length - 1), integers().between(0, 255))
        .checkAssert(
            (at, v) -> {
              byte[] b = Arrays.copyOf(hello, hello.length);
              b[at] = (byte) (int) v;
              ClientHello.Parsed p = ClientHello.parse(b, b.length);
              if (p.status() == Status.SERVER_NAME) {
                assertNotNull(p.serverName());
              }
            });
  }
}
