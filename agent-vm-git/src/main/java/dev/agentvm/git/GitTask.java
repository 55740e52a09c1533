package dev.agentvm.git;

import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * One agent run on a copy of a host repository, whose commits come back as a branch.
 *
 * <pre>{@code
 * GitTask task = GitTask.builder(repo, "main")
 *     .file("agent.py", code)                       // lands in /workspace/input/agent.py
 *     .command("python3 /workspace/input/agent.py") // runs in the guest's clone
 *     .secretEnv("API_TOKEN", token)                // environment only, redacted in results
 *     .build();
 * }</pre>
 *
 * @param id task id: letters, digits, {@code . _ -}
 * @param repository the host repository; read only, never mounted into the guest
 * @param baseRef the commit the agent starts from (branch, tag or commit id)
 * @param branch the host branch the agent's commits go to ({@code agent/<id>} by default)
 * @param command the agent's shell command, run in the guest's clone of the repository
 * @param files files put into {@code /workspace/input/} (the agent's code, data)
 * @param env environment variables for the agent
 * @param secretEnv environment variables whose values never reach a log, a file or a result
 * @param timeout the agent's time limit
 * @param outputLimit bytes of the run's stdout and of its stderr kept (more is drained and dropped)
 * @param onDirty what to do with changes the agent did not commit
 * @param mergeIfDiverged if the branch exists and the agent's work does not descend from it: merge
 *     (conflicts are reported, never resolved) instead of failing
 * @param slot a persistent slot to mount at {@code /slots/<name>}, or empty
 * @param slotSize the slot's size when it is first made
 * @param authorName the author of the agent's commits
 * @param authorEmail the author's email
 */
public record GitTask(
    String id,
    Path repository,
    String baseRef,
    String branch,
    String command,
    Map<String, byte[]> files,
    Map<String, String> env,
    Map<String, String> secretEnv,
    Duration timeout,
    long outputLimit,
    DirtyPolicy onDirty,
    boolean mergeIfDiverged,
    Optional<String> slot,
    long slotSize,
    String authorName,
    String authorEmail) {
  private static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");

  /** What happens to changes the agent left uncommitted. */
  public enum DirtyPolicy {
    /** The task fails; the changes are in the failure as a patch; the host is untouched. */
    FAIL,
    /** The changes are committed on top of the agent's commits and come back with them. */
    AUTO_COMMIT
  }

  public GitTask {
    Objects.requireNonNull(repository, "repository");
    Objects.requireNonNull(baseRef, "baseRef");
    Objects.requireNonNull(command, "command");
    Objects.requireNonNull(timeout, "timeout");
    Objects.requireNonNull(onDirty, "onDirty");
    Objects.requireNonNull(slot, "slot");
    if (!ID.matcher(id).matches()) {
      throw new IllegalArgumentException("task id must match " + ID + ", was '" + id + "'");
    }
    if (baseRef.isBlank() || baseRef.startsWith("-")) {
      throw new IllegalArgumentException("bad base ref '" + baseRef + "'");
    }
    if (branch.isBlank() || branch.startsWith("-")) {
      throw new IllegalArgumentException("bad branch '" + branch + "'");
    }
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("timeout must be positive");
    }
    if (outputLimit < 0) {
      throw new IllegalArgumentException("outputLimit must be >= 0");
    }
    repository = repository.toAbsolutePath().normalize();
    files = Map.copyOf(files);
    env = Map.copyOf(env);
    secretEnv = Map.copyOf(secretEnv);
    for (String k : secretEnv.keySet()) {
      if (env.containsKey(k)) {
        throw new IllegalArgumentException("variable " + k + " is both in env and in secretEnv");
      }
    }
  }

  public static Builder builder(Path repository, String baseRef) {
    return new Builder(repository, baseRef);
  }

  @Override
  public String toString() {
    // secret values stay out of logs and exception messages
    return "GitTask{"
        + id
        + ", "
        + repository
        + " @ "
        + baseRef
        + " -> "
        + branch
        + ", secretEnv="
        + secretEnv.keySet()
        + "}";
  }

  /** Builds a {@link GitTask}. */
  public static final class Builder {
    private final Path repository;
    private final String baseRef;
    private String id = "t-" + UUID.randomUUID().toString().substring(0, 8);
    private @Nullable String branch;
    private @Nullable String command;
    private final Map<String, byte[]> files = new LinkedHashMap<>();
    private final Map<String, String> env = new LinkedHashMap<>();
    private final Map<String, String> secretEnv = new LinkedHashMap<>();
    private Duration timeout = Duration.ofMinutes(10);
    private long outputLimit = dev.agentvm.execution.ExecutionRequest.DEFAULT_OUTPUT_LIMIT;
    private DirtyPolicy onDirty = DirtyPolicy.FAIL;
    private boolean merge;
    private @Nullable String slot;
    private long slotSize = 1L << 30;
    private String authorName = "agent-vm agent";
    private String authorEmail = "agent@agent-vm.invalid";

    private Builder(Path repository, String baseRef) {
      this.repository = repository;
      this.baseRef = baseRef;
    }

    public Builder id(String id) {
      this.id = id;
      return this;
    }

    /** The host branch to bring the work back to (default {@code agent/<id>}). */
    public Builder branch(String branch) {
      this.branch = branch;
      return this;
    }

    public Builder command(String shellCommand) {
      this.command = shellCommand;
      return this;
    }

    /** A file for {@code /workspace/input/<path>}. */
    public Builder file(String path, byte[] content) {
      files.put(path, content.clone());
      return this;
    }

    public Builder env(String name, String value) {
      env.put(name, value);
      return this;
    }

    public Builder secretEnv(String name, String value) {
      secretEnv.put(name, value);
      return this;
    }

    /**
     * The agent's time limit (positive; default 10 min). The execution gets 90 s more for the git
     * steps in the guest.
     */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /** Bytes of stdout, and of stderr, kept in the result (default 1 MiB each). */
    public Builder outputLimit(long bytes) {
      this.outputLimit = bytes;
      return this;
    }

    public Builder onDirty(DirtyPolicy policy) {
      this.onDirty = policy;
      return this;
    }

    /** Merge into an existing branch the work does not descend from (default: fail). */
    public Builder mergeIfDiverged(boolean merge) {
      this.merge = merge;
      return this;
    }

    /** Mounts the persistent slot {@code name} at {@code /slots/<name>} (made with the size). */
    public Builder slot(String name, long sizeBytes) {
      this.slot = name;
      this.slotSize = sizeBytes;
      return this;
    }

    public Builder author(String name, String email) {
      this.authorName = name;
      this.authorEmail = email;
      return this;
    }

    public GitTask build() {
      return new GitTask(
          id,
          repository,
          baseRef,
          branch != null ? branch : "agent/" + id,
          Objects.requireNonNull(command, "command"),
          files,
          env,
          secretEnv,
          timeout,
          outputLimit,
          onDirty,
          merge,
          Optional.ofNullable(slot),
          slotSize,
          authorName,
          authorEmail);
    }
  }
}
