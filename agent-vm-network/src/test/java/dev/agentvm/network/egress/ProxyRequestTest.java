package dev.agentvm.network.egress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;
import static org.quicktheories.generators.SourceDSL.strings;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * The proxy request parser: what it accepts, what it refuses and why, and that nothing breaks it.
 */
class ProxyRequestTest {
  private static ProxyRequest parse(String head) throws ProxyRequest.Refused {
    return ProxyRequest.parse(head.getBytes(StandardCharsets.ISO_8859_1));
  }

  private static int refusal(String head) {
    return assertThrows(ProxyRequest.Refused.class, () -> parse(head)).status;
  }

  @Test
  void connectNamesHostAndPort() throws Exception {
    ProxyRequest r = parse("CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n");
    assertTrue(r.isConnect());
    assertEquals("pypi.org", r.host());
    assertEquals(443, r.port());
    ProxyRequest v6 = parse("CONNECT [2001:db8::1]:22 HTTP/1.1\r\n\r\n");
    assertEquals("2001:db8::1", v6.host());
    assertEquals(22, v6.port());
  }

  @Test
  void plainHttpIsForwardedInOriginFormOneRequestPerConnection() throws Exception {
    ProxyRequest r =
        parse(
            String.join(
                "\r\n",
                "GET http://example.com:8080/a/b?c=d HTTP/1.1",
                "Host: example.com:8080",
                "Proxy-Connection: keep-alive",
                "Proxy-Authorization: Basic eA==",
                "Connection: keep-alive, X-Secret",
                "X-Secret: 1",
                "Accept: */*",
                "",
                ""));
    assertEquals("example.com", r.host());
    assertEquals(8080, r.port());
    String out = new String(r.originHead(), StandardCharsets.ISO_8859_1);
    assertEquals(
        "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        out);
    ProxyRequest bare = parse("GET http://example.com HTTP/1.0\r\n\r\n");
    assertEquals(80, bare.port());
    assertEquals(
        "GET / HTTP/1.0\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        new String(bare.originHead(), StandardCharsets.ISO_8859_1));
    assertEquals("/?q=1", parse("GET http://example.com?q=1 HTTP/1.1\r\n\r\n").target());
    assertEquals(0, bare.contentLength());
    assertEquals(
        12, parse("POST http://a.com/ HTTP/1.1\r\nContent-Length: 12\r\n\r\n").contentLength());
    assertEquals(
        -1,
        parse("POST http://a.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").contentLength());
  }

  @Test
  void whatIsNotAProxyRequestIsRefusedWithItsStatus() {
    assertEquals(400, refusal("GET /path HTTP/1.1\r\n\r\n"), "origin form: not for a proxy");
    assertEquals(400, refusal("GET https://example.com/ HTTP/1.1\r\n\r\n"));
    assertEquals(400, refusal("CONNECT example.com HTTP/1.1\r\n\r\n"), "no port");
    assertEquals(400, refusal("CONNECT example.com:0 HTTP/1.1\r\n\r\n"));
    assertEquals(400, refusal("CONNECT example.com:70000 HTTP/1.1\r\n\r\n"));
    assertEquals(400, refusal("GET http://user@example.com/ HTTP/1.1\r\n\r\n"), "userinfo");
    assertEquals(400, refusal("GET http://example.com/#frag HTTP/1.1\r\n\r\n"));
    assertEquals(505, refusal("GET http://example.com/ HTTP/2.0\r\n\r\n"));
    assertEquals(400, refusal("GET  http://example.com/ HTTP/1.1\r\n\r\n"), "two spaces");
    assertEquals(400, refusal("GET http://example.com/ HTTP/1.1\r\n folded\r\n\r\n"));
    assertEquals(400, refusal("GET http://example.com/ HTTP/1.1\r\nX: a\u0001b\r\n\r\n"));
    assertEquals(
        400,
        refusal("GET http://a.com/ HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n"),
        "two Host headers");
    assertEquals(
        403,
        refusal("GET http://a.com/ HTTP/1.1\r\nHost: b.com\r\n\r\n"),
        "a Host header that names another server (virtual-host fronting)");
    assertEquals(
        400,
        refusal(
            "POST http://a.com/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        "both lengths: request smuggling");
    assertEquals(400, refusal("GET http://a.com/ HTTP/1.1\r\n"), "no blank line");
    assertEquals(400, refusal("GET http://a.com/a\nb HTTP/1.1\r\n\r\n"), "a bare LF in the target");
    assertEquals(400, refusal("GET http://a.com/a\tb HTTP/1.1\r\n\r\n"));
    assertEquals(400, refusal("GET http://a.com/\u00e9 HTTP/1.1\r\n\r\n"));
    assertEquals(400, refusal("POST http://a.com/ HTTP/1.1\r\nContent-Length: x\r\n\r\n"));
    assertEquals(
        400,
        refusal("POST http://a.com/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"));
    assertEquals(
        431, refusal("GET http://a.com/ HTTP/1.1\r\nX: " + "a".repeat(20_000) + "\r\n\r\n"));
  }

  @Test
  void theHeadEndIsFoundWhereverItIs() {
    byte[] b = "GET http://a/ HTTP/1.1\r\n\r\nBODY".getBytes(StandardCharsets.ISO_8859_1);
    assertEquals(26, ProxyRequest.headEnd(b, 0, b.length));
    assertEquals(26, ProxyRequest.headEnd(b, 22, b.length));
    assertEquals(-1, ProxyRequest.headEnd(b, 0, 25));
  }

  @Test
  void anyHeadIsParsedOrRefusedNeverThrownAt() {
    qt().forAll(
            lists().of(strings().ascii().ofLengthBetween(0, 30)).ofSizeBetween(1, 6),
            integers().between(0, 3))
        .checkAssert(
            (lines, prefix) -> {
              String start =
                  new String[] {"GET http://a.com/ HTTP/1.1", "CONNECT a.com:443 HTTP/1.1", "", "X"}
                      [prefix];
              String head = start + "\r\n" + String.join("\r\n", lines) + "\r\n\r\n";
              try {
                ProxyRequest r = parse(head);
                assertFalse(r.host().isEmpty());
                assertTrue(r.port() >= 1 && r.port() <= 65535);
                String origin = new String(r.originHead(), StandardCharsets.ISO_8859_1);
                assertTrue(origin.endsWith("Connection: close\r\n\r\n"));
                assertFalse(origin.toLowerCase(java.util.Locale.ROOT).contains("proxy-"));
              } catch (ProxyRequest.Refused e) {
                assertTrue(e.status >= 400 && e.status < 600);
                assertTrue(e.getMessage() != null && !e.getMessage().isEmpty());
              }
            });
  }
}
