package dev.agentvm.git;

import dev.agentvm.core.AgentVmException;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/** A git task that did not bring its work back; {@link #reason()} says why. */
public final class GitTaskException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  /** Why a task failed. */
  public enum Reason {
    /** The task's input is unusable: no repository, unknown base ref, bad branch name. */
    INVALID,
    /** The agent left uncommitted changes; they are in {@link #uncommittedPatch()}. */
    DIRTY_WORK_TREE,
    /** The branch exists and the agent's work does not descend from it (no merge was asked). */
    BRANCH_DIVERGED,
    /** A merge was asked and conflicts; the files are in {@link #conflicts()}. */
    MERGE_CONFLICT,
    /** The agent exited with a non-zero status. */
    AGENT_FAILED,
    /** The agent ran out of time. */
    TIMED_OUT,
    /** The VM, the guest or the transfer of results failed. */
    EXECUTION,
    /** A persistent slot could not be had. */
    SLOT_BUSY
  }

  private final String taskId;
  private final Reason reason;
  private final @Nullable String uncommittedPatch;
  private final List<String> conflicts;

  GitTaskException(
      String taskId,
      Reason reason,
      String message,
      @Nullable String uncommittedPatch,
      List<String> conflicts,
      @Nullable Throwable cause) {
    super("git task " + taskId + ": " + message, cause);
    this.taskId = taskId;
    this.reason = reason;
    this.uncommittedPatch = uncommittedPatch;
    this.conflicts = List.copyOf(conflicts);
  }

  public String taskId() {
    return taskId;
  }

  public Reason reason() {
    return reason;
  }

  /** The agent's uncommitted changes as a binary git patch (redacted), if there were any. */
  public Optional<String> uncommittedPatch() {
    return Optional.ofNullable(uncommittedPatch);
  }

  /** Files that conflict in a merge. */
  public List<String> conflicts() {
    return conflicts;
  }
}
