package dev.agentvm.execution;

import dev.agentvm.execution.internal.AgentVmMeter;
import dev.agentvm.execution.internal.Meters;
import io.micrometer.core.instrument.Tags;
import java.time.Duration;
import java.util.Locale;
import org.jspecify.annotations.Nullable;

/**
 * The executor's meters (docs/observability.md): executions by outcome, durations, crashes,
 * anomalies.
 */
final class ExecutorMetrics implements ExecutionObserver {
  private final Meters meters;

  ExecutorMetrics(Meters meters) {
    this.meters = meters;
    meters.counter(AgentVmMeter.VM_CRASHES, Tags.empty()); // at 0 from the start, to alert on
  }

  private void count(TaskState end) {
    meters.increment(
        AgentVmMeter.EXECUTIONS, Tags.of("outcome", end.name().toLowerCase(Locale.ROOT)));
  }

  @Override
  public void completed(Run run, TaskState end, int exitCode, Duration total) {
    count(end);
    meters.record(
        AgentVmMeter.EXECUTION_DURATION,
        Tags.of("outcome", end.name().toLowerCase(Locale.ROOT)),
        total.toNanos());
  }

  @Override
  public void cancelled(Run run, String step) {
    count(TaskState.CANCELLED);
  }

  @Override
  public void failed(Run run, String step, @Nullable String message, boolean vmCrashed) {
    count(TaskState.FAILED);
    if (vmCrashed) {
      meters.increment(AgentVmMeter.VM_CRASHES, Tags.empty());
    }
  }

  @Override
  public void anomaly(Run run, Anomaly a) {
    meters.increment(AgentVmMeter.ANOMALIES, Tags.of("rule", a.rule()));
  }
}
