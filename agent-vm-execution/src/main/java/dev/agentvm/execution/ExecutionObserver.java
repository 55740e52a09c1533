package dev.agentvm.execution;

import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.storage.ExtractedOutput;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * What an execution reports as it goes: the executor's one observation seam. The workflow ({@link
 * AgentExecutor}) tells every observer of every event and knows none of them; the audit trail, the
 * meters, the anomaly watch and the users' {@link ExecutionListener}s are observers. Called on the
 * thread that drives the execution: fast, and never throwing (what one throws is logged and the
 * others still hear the event).
 */
interface ExecutionObserver {
  /** The execution an event is about. */
  interface Run {
    ExecutionRequest request();

    /** The sandbox (or VM) it runs on; empty before it has one. */
    String vm();

    /** What its machine is made from (the anomaly detector keeps baselines per template). */
    String template();

    /**
     * Reports anomalies; the workflow logs them, tells every observer ({@link #anomaly}) and acts
     * on their responses.
     */
    void raise(List<Anomaly> found);
  }

  default void stateChanged(Run run, @Nullable TaskState from, TaskState to) {}

  default void submitted(Run run) {}

  default void vmAcquired(Run run, Duration waited) {}

  /** The inputs are in the guest: path and size of each. */
  default void filesInjected(Run run, List<Map<String, Object>> files) {}

  default void execStarted(Run run) {}

  /** The guest's health while the code runs. */
  default void sampled(Run run, AnomalyDetector.Sample sample) {}

  /**
   * The command ended (on its own, by its timeout or by a kill).
   *
   * @param host what the host measured of it (wall time, the VM's CPU time, peak QEMU memory)
   * @param peakGuestMemKiB highest memory use the guest reported, -1 if never sampled
   * @param peakGuestLoad highest load the guest reported, -1 if never sampled
   */
  default void execFinished(
      Run run,
      ExecResult result,
      AnomalyDetector.Finished host,
      long peakGuestMemKiB,
      double peakGuestLoad) {}

  default void outputExtracted(Run run, Path directory, ExtractedOutput output) {}

  /** The execution ended with a result: {@code end} is COMPLETED or TIMED_OUT. */
  default void completed(Run run, TaskState end, int exitCode, Duration total) {}

  default void cancelled(Run run, String step) {}

  /**
   * The execution failed.
   *
   * @param message the cause's text; may carry the guest's words
   * @param vmCrashed whether the cause was the VM's QEMU dying
   */
  default void failed(Run run, String step, @Nullable String message, boolean vmCrashed) {}

  default void anomaly(Run run, Anomaly anomaly) {}

  /** The sandbox is kept paused for inspection after an anomaly rule asked for it. */
  default void quarantined(Run run, String rule) {}

  /** The sandbox is gone. */
  default void released(Run run, String reason) {}
}
