package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class ExecutionRequestTest {
  @Test
  void theIdMustBeAPlainName() {
    for (String bad :
        List.of("", "../etc", "a/b", ".hidden", "-x", "a b", "a\nb", "x".repeat(129), "é")) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class,
              () -> ExecutionRequest.command("true").id(bad).build(),
              bad);
      assertEquals(true, e.getMessage().contains("plain name"), e.getMessage());
    }
    assertEquals("run-1.a_b", ExecutionRequest.command("true").id("run-1.a_b").build().id());
  }
}
