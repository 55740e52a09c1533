package dev.agentvm.execution;

import java.time.Instant;
import java.util.Map;
import java.util.Objects;

/**
 * One step of an execution's life, as written to the {@link AuditLog}.
 *
 * @param time when it happened
 * @param event what happened: {@code execution.submitted}, {@code vm.acquired}, {@code
 *     files.injected}, {@code exec.started}, {@code exec.finished}, {@code output.extracted},
 *     {@code vm.released}, {@code execution.completed}, {@code execution.failed}, {@code
 *     anomaly.detected}
 * @param executionId the execution
 * @param vm the VM, or empty
 * @param details more, by name; secret environment values never appear here
 */
public record AuditEvent(
    Instant time, String event, String executionId, String vm, Map<String, Object> details) {
  public AuditEvent {
    Objects.requireNonNull(time, "time");
    Objects.requireNonNull(event, "event");
    Objects.requireNonNull(executionId, "executionId");
    vm = vm == null ? "" : vm;
    details = Map.copyOf(details);
  }
}
