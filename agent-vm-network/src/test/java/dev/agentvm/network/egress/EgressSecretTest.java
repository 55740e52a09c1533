package dev.agentvm.network.egress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Secrets: what they accept, what they bind, and that they never show their value. */
class EgressSecretTest {
  @Test
  void itBindsDomainsAndHidesItsValue() {
    EgressSecret s =
        EgressSecret.of("OPENAI_API_KEY", "sk-live-123")
            .boundTo("api.openai.com")
            .boundTo("*.example.com")
            .boundTo("api.openai.com")
            .header("Authorization", "Bearer {value}");
    assertEquals(List.of("api.openai.com", "*.example.com"), s.domains());
    assertTrue(s.bindsTo("api.openai.com"));
    assertTrue(s.bindsTo("a.b.example.com"));
    assertFalse(s.bindsTo("example.com"));
    assertFalse(s.bindsTo("openai.com"));
    assertEquals("agentvm-secret-OPENAI_API_KEY-placeholder", s.placeholder());
    assertFalse(s.toString().contains("sk-live"), s.toString());
    EgressPolicy p = EgressPolicy.builder().allowDomain("api.openai.com").secret(s).build();
    assertFalse(p.toString().contains("sk-live"), p.toString());
    assertEquals(List.of(s), p.secretsFor("api.openai.com"));
    assertEquals(List.of(), p.secretsFor("other.test"));
  }

  @Test
  void aRecordedSecretHasNoValueAndBindsNothing() {
    EgressSecret s =
        EgressSecret.withoutValue("K", List.of("api.test"), "X-Key", "{value}", List.of("x-other"));
    assertFalse(s.hasValue());
    assertTrue(s.toString().contains("no value here"));
    EgressPolicy p = EgressPolicy.builder().secret(s).build();
    assertEquals(List.of(), p.secretsFor("api.test"), "nothing to put in: tunnelled as it is");
    assertEquals(List.of("api.test"), p.secrets().get(0).domains());
    assertEquals(List.of("x-other"), s.inHeaders());
    assertThrows(IllegalArgumentException.class, () -> s.inHeader("Host"));
  }

  @Test
  void badNamesValuesAndTemplatesAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> EgressSecret.of("1X", "v"));
    assertThrows(IllegalArgumentException.class, () -> EgressSecret.of("A-B", "v"));
    assertThrows(IllegalArgumentException.class, () -> EgressSecret.of("K", ""));
    assertThrows(IllegalArgumentException.class, () -> EgressSecret.of("K", "a\r\nX: y"));
    assertThrows(IllegalArgumentException.class, () -> EgressSecret.of("K", "\u20ac"));
    EgressSecret k = EgressSecret.of("K", "v");
    assertThrows(IllegalArgumentException.class, () -> k.boundTo("*.com"));
    assertThrows(IllegalArgumentException.class, () -> k.boundTo("not a name"));
    assertThrows(IllegalArgumentException.class, () -> k.header("Bad Header", "{value}"));
    assertThrows(IllegalArgumentException.class, () -> k.header("X", "no value"));
    assertThrows(IllegalArgumentException.class, () -> k.header("X", "{value}\r\nY: z"));
  }
}
