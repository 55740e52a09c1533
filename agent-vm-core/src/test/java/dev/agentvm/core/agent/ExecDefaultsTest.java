package dev.agentvm.core.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * A command always has a time limit: the request's own, or the documented default (what reaches the
 * guest is checked in {@code AgentClientTest}).
 */
class ExecDefaultsTest {
  @Test
  void aRequestWithoutATimeoutGetsTheDocumentedDefault() {
    assertEquals(Duration.ofMinutes(10), ExecRequest.DEFAULT_TIMEOUT);
    ExecRequest plain = ExecRequest.command("true");
    assertEquals(Duration.ZERO, plain.timeout(), "none given: a sandbox can still apply its own");
    assertEquals(ExecRequest.DEFAULT_TIMEOUT, plain.timeoutOrDefault());
    assertEquals(
        ExecRequest.DEFAULT_TIMEOUT, ExecRequest.script("echo hi", "sh").timeoutOrDefault());
    assertEquals(
        ExecRequest.DEFAULT_TIMEOUT,
        plain.withTimeout(Duration.ofSeconds(5)).withTimeout(Duration.ZERO).timeoutOrDefault(),
        "zero asks for the default again");
    assertEquals(
        Duration.ofSeconds(5), plain.withTimeout(Duration.ofSeconds(5)).timeoutOrDefault());
  }

  @Test
  void execWaitsForTheLimitPlusKillGracePlusAnAllowanceNeverADay() {
    assertEquals(
        Duration.ofMinutes(10).plusSeconds(2).plusSeconds(30),
        AgentClient.execWait(ExecRequest.command("true")),
        "default timeout + default kill grace (2 s) + 30 s");
    assertEquals(
        Duration.ofSeconds(5 + 1 + 30),
        AgentClient.execWait(
            ExecRequest.command("true")
                .withTimeout(Duration.ofSeconds(5))
                .withKillGrace(Duration.ofSeconds(1))));
  }
}
