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
