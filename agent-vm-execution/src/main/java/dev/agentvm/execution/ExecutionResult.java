package dev.agentvm.execution;

import dev.agentvm.storage.ExtractedOutput;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * How an execution ended.
 *
 * @param id the request's id
 * @param state COMPLETED, TIMED_OUT or CANCELLED (failures are thrown)
 * @param exitCode the code's exit code (128 + signal if a signal ended it)
 * @param stdout standard output, up to the request's limit
 * @param stderr standard error, up to the request's limit
 * @param stdoutTruncated there was more standard output than the limit
 * @param stderrTruncated there was more standard error than the limit
 * @param outputFiles files extracted from {@code /workspace/output}
 * @param duration from submission to result
 * @param runTime the code's own run time, measured in the guest
 * @param vm the VM that ran it
 */
// stdout and stderr are byte[] in the public API; nothing compares results
@SuppressWarnings("ArrayRecordComponent")
public record ExecutionResult(
    String id,
    TaskState state,
    int exitCode,
    byte[] stdout,
    byte[] stderr,
    boolean stdoutTruncated,
    boolean stderrTruncated,
    ExtractedOutput outputFiles,
    Duration duration,
    Duration runTime,
    String vm) {

  public boolean timedOut() {
    return state == TaskState.TIMED_OUT;
  }

  public String stdoutText() {
    return new String(stdout, StandardCharsets.UTF_8);
  }

  public String stderrText() {
    return new String(stderr, StandardCharsets.UTF_8);
  }

  @Override
  public String toString() {
    return "ExecutionResult{"
        + id
        + ", "
        + state
        + ", exit "
        + exitCode
        + ", "
        + duration.toMillis()
        + " ms on "
        + vm
        + ", stdout "
        + stdout.length
        + "B, stderr "
        + stderr.length
        + "B, "
        + outputFiles.files().size()
        + " files}";
  }
}
