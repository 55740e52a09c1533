package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RedactionTest {
  @Test
  void everyOccurrenceIsReplacedLongestFirst() {
    assertEquals(
        "key=[REDACTED] and [REDACTED]!",
        Redaction.redact("key=s3cret-long and s3cret!", List.of("s3cret", "s3cret-long", "")));
  }

  /** A cut that falls inside a secret must not leave its first or last characters readable. */
  @Test
  void piecesOfASecretAtACutEdgeAreRedactedToo() {
    List<String> secrets = List.of("s3cr3t-T0KEN-value");
    String stderr = "fatal: bad ref 'refs/heads/s3cr3t-T0KEN-value' and more";
    String cutEnd = stderr.substring(0, stderr.indexOf("T0KEN") + 2); // "...s3cr3t-T0"
    assertEquals(
        "fatal: bad ref 'refs/heads/" + Redaction.REDACTED, Redaction.redact(cutEnd, secrets));
    String cutStart = stderr.substring(stderr.indexOf("KEN-value"));
    assertEquals(Redaction.REDACTED + "' and more", Redaction.redact(cutStart, secrets));
    assertEquals("ab", Redaction.redact("ab", List.of("abc")), "two characters are not a piece");
    assertEquals("plain text", Redaction.redact("plain text", secrets));
  }

  @Test
  void nestedDetailsAreRedactedKeysToo() {
    Map<String, Object> d =
        Map.of(
            "files",
            List.of("out/tok-XYZ.txt", "ok.txt"),
            "error",
            "agent said tok-XYZ",
            "nested",
            Map.of("tok-XYZ", 1),
            "count",
            3);
    Map<String, Object> r = Redaction.redactDetails(d, List.of("tok-XYZ"));
    assertFalse(r.toString().contains("tok-XYZ"), r.toString());
    assertEquals(3, r.get("count"));
    assertSame(d, Redaction.redactDetails(d, List.of()), "nothing to do without secrets");
  }
}
