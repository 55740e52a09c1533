package dev.agentvm.execution;

import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Redaction;
import dev.agentvm.storage.ExtractedOutput;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The audit events of an execution (docs/observability.md lists them). Secret values are redacted
 * from every detail, and text the guest chose is cleaned of control characters.
 */
final class AuditTrail implements ExecutionObserver {
  private static final Logger LOG = LoggerFactory.getLogger(AuditTrail.class);

  private final AuditLog log;

  AuditTrail(AuditLog log) {
    this.log = log;
  }

  private void record(Run run, String event, Map<String, Object> details) {
    ExecutionRequest req = run.request();
    try {
      // guest-chosen text in the details (names, messages) may carry a secret the guest was given
      log.record(
          new AuditEvent(
              Instant.now(),
              event,
              req.id(),
              run.vm(),
              Redaction.redactDetails(details, req.secretEnv().values())));
    } catch (RuntimeException e) {
      LOG.warn("audit log threw", e);
    }
  }

  /** Guest-derived text: secret values redacted, control characters removed. */
  static String guestText(Run run, @Nullable Object text) {
    return LogText.clean(
        Redaction.redact(String.valueOf(text), run.request().secretEnv().values()));
  }

  @Override
  public void submitted(Run run) {
    ExecutionRequest req = run.request();
    Map<String, Object> d = new LinkedHashMap<>();
    d.put("argv", req.argv());
    d.put("scriptChars", req.script().length());
    d.put("inputs", req.inputs().stream().map(ExecutionRequest.InputFile::path).toList());
    d.put("env", req.env());
    // the names of secret variables, never their values
    d.put("secretEnv", req.secretEnv().keySet().stream().sorted().toList());
    d.put("timeoutMillis", req.timeout().toMillis());
    record(run, "execution.submitted", d);
  }

  @Override
  public void vmAcquired(Run run, Duration waited) {
    record(run, "vm.acquired", Map.of("waitMillis", waited.toMillis()));
  }

  @Override
  public void filesInjected(Run run, List<Map<String, Object>> files) {
    record(run, "files.injected", Map.of("files", files));
  }

  @Override
  public void execStarted(Run run) {
    ExecutionRequest req = run.request();
    record(
        run, "exec.started", Map.of("argv", req.argv(), "timeoutMillis", req.timeout().toMillis()));
  }

  @Override
  public void execFinished(
      Run run,
      ExecResult r,
      AnomalyDetector.Finished host,
      long peakGuestMemKiB,
      double peakGuestLoad) {
    Map<String, Object> d = new LinkedHashMap<>();
    d.put("exitCode", r.exitCode());
    d.put("timedOut", r.timedOut());
    d.put("runMillis", host.wallTime().toMillis());
    d.put("stdoutBytes", r.stdout().length);
    d.put("stderrBytes", r.stderr().length);
    Duration cpu = host.cpuTime();
    if (cpu != null) {
      d.put("hostCpuMillis", cpu.toMillis());
    }
    if (host.peakRssKiB() >= 0) {
      d.put("hostPeakRssKiB", host.peakRssKiB());
    }
    record(run, "exec.finished", d);
  }

  @Override
  public void outputExtracted(Run run, Path directory, ExtractedOutput out) {
    record(
        run,
        "output.extracted",
        Map.of(
            "directory", directory.toString(),
            "files", out.files().size(),
            "bytes", out.totalBytes(),
            // names the guest chose
            "skipped", out.skipped().stream().map(s -> guestText(run, s)).toList()));
  }

  @Override
  public void completed(Run run, TaskState end, int exitCode, Duration total) {
    record(
        run,
        "execution.completed",
        Map.of("state", end.name(), "exitCode", exitCode, "durationMillis", total.toMillis()));
  }

  @Override
  public void cancelled(Run run, String step) {
    record(run, "execution.cancelled", Map.of("step", step));
  }

  @Override
  public void failed(Run run, String step, @Nullable String message, boolean vmCrashed) {
    // the message may carry the guest's words (an agent's ERROR, a console log)
    record(run, "execution.failed", Map.of("step", step, "error", guestText(run, message)));
  }

  @Override
  public void anomaly(Run run, Anomaly a) {
    record(
        run,
        "anomaly.detected",
        Map.of("rule", a.rule(), "detail", a.detail(), "response", a.response().name()));
  }

  @Override
  public void quarantined(Run run, String rule) {
    record(run, "vm.quarantined", Map.of("rule", rule));
  }

  @Override
  public void released(Run run, String reason) {
    record(run, "vm.released", Map.of("disposal", "destroyed", "reason", reason));
  }
}
