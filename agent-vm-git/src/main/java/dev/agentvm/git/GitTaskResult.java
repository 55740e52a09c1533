package dev.agentvm.git;

import java.time.Duration;
import java.util.Optional;

/**
 * What a git task brought back. Texts from the guest have the task's secret values replaced by
 * {@value GitTaskRunner#REDACTED}.
 *
 * @param taskId the task
 * @param branch the host branch
 * @param outcome what happened to the branch
 * @param baseCommit the commit the agent started from
 * @param agentCommit the commit the agent ended on (equal to the base if it made none)
 * @param branchCommit what the branch points to now (a merge commit after a merge; empty if nothing
 *     was made)
 * @param tree the tree of {@code agentCommit}
 * @param agentExitCode the agent's exit code
 * @param stdout the run's standard output, redacted
 * @param stderr the run's standard error, redacted
 * @param autoCommittedPatch the changes the agent left uncommitted and that were committed for it
 * @param vm the VM that ran it
 * @param duration from submission to the branch update
 */
public record GitTaskResult(
    String taskId,
    String branch,
    Outcome outcome,
    String baseCommit,
    String agentCommit,
    Optional<String> branchCommit,
    String tree,
    int agentExitCode,
    String stdout,
    String stderr,
    Optional<String> autoCommittedPatch,
    String vm,
    Duration duration) {

  /** What happened to the host branch. */
  public enum Outcome {
    /** The branch did not exist and now points to the agent's commit. */
    CREATED,
    /** The branch existed, the agent's commit descends from it: moved forward. */
    FAST_FORWARDED,
    /** The branch existed and had diverged; a merge commit (no conflicts) was made. */
    MERGED,
    /** The agent made no commit: nothing changed on the host. */
    NO_CHANGES
  }
}
