package dev.agentvm.core.agent;

import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * How a command ended, with its output (each stream bounded by the request's output limit).
 *
 * @param exitCode exit code; 128 + signal for a command ended by a signal
 * @param signal the signal the agent used to stop it (timeout or kill), or 0
 * @param duration run time measured in the guest
 * @param timedOut the time limit stopped it
 * @param killed a kill request stopped it
 * @param stdout standard output, up to the limit
 * @param stderr standard error, up to the limit
 * @param stdoutTruncated standard output was longer than the limit
 * @param stderrTruncated standard error was longer than the limit
 */
// Output as received: up to 16 MiB a stream by default, too big to copy on every access; results
// are not compared by value.
@SuppressWarnings("ArrayRecordComponent")
public record ExecResult(
    int exitCode,
    int signal,
    Duration duration,
    boolean timedOut,
    boolean killed,
    byte[] stdout,
    byte[] stderr,
    boolean stdoutTruncated,
    boolean stderrTruncated) {

  public String stdoutText() {
    return new String(stdout, StandardCharsets.UTF_8);
  }

  public String stderrText() {
    return new String(stderr, StandardCharsets.UTF_8);
  }

  @Override
  public String toString() {
    return "ExecResult{exit="
        + exitCode
        + ", signal="
        + signal
        + ", "
        + duration.toMillis()
        + " ms"
        + (timedOut ? ", timed out" : "")
        + (killed ? ", killed" : "")
        + ", stdout="
        + stdout.length
        + "B"
        + (stdoutTruncated ? "+" : "")
        + ", stderr="
        + stderr.length
        + "B"
        + (stderrTruncated ? "+" : "")
        + "}";
  }
}
