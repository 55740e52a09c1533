package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class LogTextTest {
  @Test
  void controlAndFormatCharactersCannotForgeLines() {
    assertEquals("a?b?c?d?e", LogText.clean("a\nb\rc\u001bd\u202ee"));
    assertEquals("null", LogText.clean(null));
    assertEquals("ü 😀 ok", LogText.clean("ü 😀 ok"));
  }

  @Test
  void lengthIsCapped() {
    String s = LogText.clean("x".repeat(10_000));
    assertTrue(s.length() < LogText.MAX_CHARS + 40, s);
    assertTrue(s.endsWith("(9488 more chars)"), s);
  }
}
