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
import java.util.List;
import org.junit.jupiter.api.Test;

/** The first request head of a terminated tunnel: where values go, where never, what is refused. */
class SecretHeadsTest {
  private static final String VALUE = "s3cr3t-value";
  private static final EgressSecret KEY =
      EgressSecret.of("API_KEY", VALUE)
          .boundTo("api.test")
          .header("X-Bound", "Key {value}")
          .inHeader("X-Key");
  private static final String P = KEY.placeholder();

  private static String rewrite(String head) throws SecretHeads.Refused {
    return new String(
        SecretHeads.rewrite(
            head.getBytes(StandardCharsets.ISO_8859_1), "api.test", 443, List.of(KEY)),
        StandardCharsets.ISO_8859_1);
  }

  private static int refusal(String head) {
    return assertThrows(SecretHeads.Refused.class, () -> rewrite(head)).status;
  }

  @Test
  void theValueGoesOnlyIntoTheHeadersItsSecretNames() throws Exception {
    String t =
        rewrite(
            "POST /v1/x?k="
                + P
                + " HTTP/1.1\r\nHost: api.test\r\nX-Key: "
                + P
                + "\r\nAuthorization: Basic "
                + P
                + "\r\nOrigin: "
                + P
                + "\r\nx-bound: guess\r\nConnection: keep-alive\r\nContent-Length: 5\r\n"
                + "X-Forwarded-Host: evil.test\r\nForwarded: host=evil.test\r\n\r\n");
    assertTrue(t.startsWith("POST /v1/x?k=" + P + " HTTP/1.1\r\n"), "never the request line: " + t);
    assertTrue(t.contains("\r\nX-Key: " + VALUE + "\r\n"), t);
    assertTrue(t.contains("\r\nAuthorization: Basic " + VALUE + "\r\n"), t);
    assertTrue(t.contains("\r\nOrigin: " + P + "\r\n"), "a header the secret does not name: " + t);
    assertTrue(t.contains("\r\nX-Bound: Key " + VALUE + "\r\n"), t);
    assertFalse(t.contains("guess"), "the guest's own header of that name is dropped");
    assertFalse(t.contains("evil.test"), "routing headers are dropped: " + t);
    assertTrue(t.endsWith("\r\nConnection: close\r\n\r\n"), "one request per connection: " + t);
    assertFalse(t.contains("keep-alive"), t);
  }

  @Test
  void aRequestForAnotherSiteIsRefused() {
    assertEquals(421, refusal("GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n"));
    assertEquals(421, refusal("GET / HTTP/1.1\r\nHost: api.test:444\r\n\r\n"));
    assertEquals(421, refusal("GET https://evil.test/ HTTP/1.1\r\nHost: api.test\r\n\r\n"));
    assertEquals(400, refusal("GET https://x@api.test/ HTTP/1.1\r\nHost: api.test\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/1.1\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/1.0\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/1.1\r\nHost: api.test\r\nHost: evil.test\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/1.1\r\nHost: api.test\u000b\r\n\r\n"));
    assertEquals(400, refusal("GET /a\nHost:evil.test HTTP/1.1\r\nHost: api.test\r\n\r\n"));
    assertEquals(400, refusal("GET /a\tb HTTP/1.1\r\nHost: api.test\r\n\r\n"));
    assertEquals(405, refusal("TRACE / HTTP/1.1\r\nHost: api.test\r\n\r\n"));
  }

  @Test
  void ambiguousOrMalformedHeadsAreRefused() {
    assertEquals(400, refusal("GET / HTTP/1.1\r\nHost: api.test\r\n folded\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/2\r\nHost: api.test\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/1.1\r\nHost: api.test\r\nNoColon\r\n\r\n"));
    String twoLengths = "POST / HTTP/1.1\r\nHost: api.test\r\nContent-Length: 1\r\n";
    assertEquals(400, refusal(twoLengths + "Content-Length: 2\r\n\r\n"));
    assertEquals(400, refusal(twoLengths + "Transfer-Encoding: chunked\r\n\r\n"));
    String length = "POST / HTTP/1.1\r\nHost: api.test\r\nContent-Length: ";
    assertEquals(400, refusal(length + "-1\r\n\r\n"));
    assertEquals(400, refusal(length + "+5\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/1.1\r\nHost: api.test\r\nX: a\u0001b\r\n\r\n"));
    assertEquals(400, refusal("GET / HTTP/1.1\r\nHost: api.test\r\n"));
  }

  @Test
  void anUpgradeKeepsItsConnectionHeader() throws Exception {
    String up = rewrite("GET /ws HTTP/1.1\r\nHost: api.test:443\r\nUpgrade: websocket\r\n\r\n");
    assertTrue(up.endsWith("\r\nConnection: Upgrade\r\n\r\n"), up);
    assertTrue(rewrite("GET / HTTP/1.0\r\nHost: API.test.\r\n\r\n").contains("Host: API.test."));
  }

  @Test
  void theValueLandsExactlyInTheNamedHeadersWhateverTheGuestWrites() {
    qt().withExamples(300)
        .forAll(
            lists().of(strings().basicLatinAlphabet().ofLengthBetween(0, 20)).ofSizeBetween(0, 5),
            strings().basicLatinAlphabet().ofLengthBetween(0, 20),
            integers().between(0, 3))
        .checkAssert(
            (values, path, where) -> {
              String target = "/" + path.replace(" ", "").replace("\t", "") + (where == 0 ? P : "");
              StringBuilder h = new StringBuilder();
              h.append("GET ").append(target).append(" HTTP/1.1\r\nHost: api.test\r\n");
              int i = 0;
              for (String v : values) {
                String name = i % 2 == 0 ? "X-Key" : "X-" + i;
                i++;
                h.append(name).append(": ").append(where == 1 ? P + v : v + P).append("\r\n");
              }
              h.append("\r\n");
              try {
                String out = rewrite(h.toString());
                String[] lines = out.split("\r\n", -1);
                assertEquals("GET " + target + " HTTP/1.1", lines[0]);
                assertEquals(out.indexOf("\r\n\r\n"), out.length() - 4, "one head only");
                for (int k = 1; k < lines.length; k++) {
                  boolean named =
                      lines[k].startsWith("X-Key: ") || lines[k].startsWith("X-Bound: ");
                  assertEquals(named, lines[k].contains(VALUE), "value where named: " + lines[k]);
                  assertFalse(named && lines[k].contains(P), "placeholder left: " + lines[k]);
                }
              } catch (SecretHeads.Refused e) {
                throw new AssertionError("refused a well-formed head: " + h, e);
              }
            });
  }

  @Test
  void sameSiteComparesNameAndPort() {
    assertTrue(SecretHeads.sameSite("API.test", "api.test", 443));
    assertTrue(SecretHeads.sameSite("api.test:443", "api.test", 443));
    assertFalse(SecretHeads.sameSite("api.test:8443", "api.test", 443));
    assertFalse(SecretHeads.sameSite("api.test.evil", "api.test", 443));
  }
}
