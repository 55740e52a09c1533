package dev.agentvm.execution.sandbox;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What the host knows of a sandbox without touching its VM.
 *
 * @param id the sandbox's id (also its VM's name)
 * @param state its state as last recorded
 * @param labels the labels it was created with
 * @param created when it was created
 * @param retainUntil for a paused sandbox, when the reaper may delete it; empty otherwise
 * @param owner the process that drives it (empty while paused)
 * @param checkpoints its checkpoints' names, oldest first
 */
public record SandboxInfo(
    String id,
    SandboxState state,
    Map<String, String> labels,
    Instant created,
    Optional<Instant> retainUntil,
    String owner,
    List<String> checkpoints) {
  public SandboxInfo {
    labels = Map.copyOf(labels);
    checkpoints = List.copyOf(checkpoints);
  }

  /** True when every label of {@code selector} is present here with the same value. */
  public boolean matches(Map<String, String> selector) {
    return selector.entrySet().stream().allMatch(e -> e.getValue().equals(labels.get(e.getKey())));
  }
}
