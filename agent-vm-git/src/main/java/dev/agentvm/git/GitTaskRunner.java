package dev.agentvm.git;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.AuditLog;
import dev.agentvm.execution.ExecutionFailedException;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.ExecutionResult;
import dev.agentvm.execution.TaskState;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.git.GitTaskException.Reason;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Redaction;
import dev.agentvm.internal.Threads;
import dev.agentvm.internal.Trees;
import dev.agentvm.storage.OutputLimits;
import dev.agentvm.storage.PersistentSlots;
import dev.agentvm.storage.StorageException;
import edu.umd.cs.findbugs.annotations.SuppressFBWarnings;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs {@link GitTask}s: the base commit goes into the VM as a bundle (the host repository is never
 * mounted), the agent works on a clone in guest memory, and its commits come back as a bundle that
 * the host checks object by object before it moves one branch, fast-forward only unless the task
 * asks for a merge.
 *
 * <p>Before the VM is torn down, the guest looks for changes the agent did not commit: by default
 * the task then fails with the changes as a patch ({@link GitTaskException#uncommittedPatch()}) and
 * the host repository untouched; {@link GitTask.DirtyPolicy#AUTO_COMMIT} commits them instead.
 *
 * <p>The VMs need {@code git} and {@code sh}: an image flavour with {@link
 * dev.agentvm.image.MicroImage#PYTHON_GIT}.
 *
 * <pre>{@code
 * try (GitTaskRunner runner = GitTaskRunner.builder(executor).build()) {
 *   GitTaskResult r = runner.run(task);
 *   System.out.println(r.branch() + " -> " + r.branchCommit().orElse("(no change)"));
 * }
 * }</pre>
 */
public final class GitTaskRunner implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(GitTaskRunner.class);

  /** What secret values are replaced with in results and messages. */
  public static final String REDACTED = Redaction.REDACTED;

  /** Time the guest gets for cloning and collecting, besides the agent's own limit. */
  static final Duration GIT_RESERVE = Duration.ofSeconds(90);

  private static final String OUT = ".agentvm-git";
  private static final Map<Path, Object> REPO_LOCKS = new ConcurrentHashMap<>();

  /** Default limit of the guest's result bundle. */
  public static final long DEFAULT_MAX_BUNDLE_BYTES = 256L << 20;

  /** Bytes of a guest file holding one object id ({@code head}) or a number or word. */
  static final int MAX_SMALL_FILE = 128;

  /** Bytes of the guest's {@code step} file kept (a diagnostic: more is cut). */
  static final int MAX_STEP_FILE = 4096;

  /** Bytes of the guest's {@code uncommitted.patch}; a larger one fails the task. */
  static final int MAX_PATCH_FILE = 16 << 20;

  private final AgentExecutor executor;
  private final @Nullable Sandboxes slotSandboxes; // these three only with slots()
  private final @Nullable SandboxSpec slotSpec;
  private final @Nullable PersistentSlots slots;
  private final Duration slotWait;
  private final @Nullable AuditLog audit;
  private final List<GitTaskListener> listeners;
  private final Path workRoot;
  private final ExecutorService tasks;
  private final ExecutorService events;
  private final String script;
  private final long maxBundleBytes;

  private GitTaskRunner(Builder b) {
    this.executor = b.executor;
    this.slotSandboxes = b.slotSandboxes;
    this.slotSpec = b.slotSpec;
    this.slots = b.slots;
    this.slotWait = b.slotWait;
    this.audit = b.audit;
    this.listeners = List.copyOf(b.listeners);
    this.workRoot = b.workRoot;
    this.maxBundleBytes = b.maxBundleBytes;
    this.tasks =
        Executors.newFixedThreadPool(b.parallelism, Threads.namedDaemons("agentvm-git-task"));
    this.events = Executors.newSingleThreadExecutor(Threads.namedDaemons("agentvm-git-events"));
    try (InputStream in = GitTaskRunner.class.getResourceAsStream("/dev/agentvm/git/git-task.sh")) {
      this.script = new String(Objects.requireNonNull(in).readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A runner whose tasks without a slot run on {@code executor} (a sandbox each). */
  public static Builder builder(AgentExecutor executor) {
    return new Builder(executor);
  }

  /** Runs the task asynchronously; the future fails with a {@link GitTaskException}. */
  public CompletableFuture<GitTaskResult> submit(GitTask task) {
    return CompletableFuture.supplyAsync(() -> run(task), tasks);
  }

  /**
   * Runs the task and returns when its work is on the host branch.
   *
   * @throws GitTaskException when the work was not brought back, with the reason
   */
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "a validated id and branch, an enum, a number; the error text is cleaned")
  public GitTaskResult run(GitTask task) {
    long t0 = System.nanoTime();
    fire(l -> l.started(task.id(), task.branch()));
    try {
      GitTaskResult r = runOnce(task, t0);
      fire(l -> l.completed(r));
      LOG.info(
          "git task {}: {} {} in {} ms",
          task.id(),
          r.outcome(),
          task.branch(),
          r.duration().toMillis());
      return r;
    } catch (GitTaskException e) {
      fire(l -> l.failed(task.id(), task.branch(), e));
      // the message may carry the guest's words (its stderr, file names, conflict paths)
      LOG.info("git task {} failed: {}", task.id(), LogText.clean(String.valueOf(e.getMessage())));
      throw e;
    } catch (RuntimeException e) {
      GitTaskException g =
          fail(task, Reason.EXECUTION, redact(task, String.valueOf(e.getMessage())), null, e);
      fire(l -> l.failed(task.id(), task.branch(), g));
      throw g;
    }
  }

  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "a validated id, our scratch path; the error text is cleaned")
  private GitTaskResult runOnce(GitTask task, long t0) {
    HostGit git;
    String base;
    try {
      git = HostGit.open(task.repository());
      if (!HostGit.validBranchName(task.branch())) {
        throw fail(task, Reason.INVALID, "'" + task.branch() + "' is not a valid branch name");
      }
      base = git.commit(task.baseRef());
    } catch (IOException e) {
      throw fail(task, Reason.INVALID, e.getMessage(), null, e);
    }
    Path scratch;
    try {
      Files.createDirectories(workRoot);
      scratch = Files.createTempDirectory(workRoot, task.id() + "-");
      // the reaper removes it if this process dies before the finally below
      Files.writeString(scratch.resolve(".owner"), LibvirtConnection.processOwner());
    } catch (IOException e) {
      throw fail(task, Reason.EXECUTION, "cannot make a scratch directory: " + e, null, e);
    }
    try {
      Path bundle;
      try {
        bundle = git.bundle(base, scratch);
      } catch (IOException e) {
        throw fail(task, Reason.INVALID, "cannot bundle " + base + ": " + e.getMessage(), null, e);
      }
      ExecutionRequest.Builder req =
          ExecutionRequest.script(script, "sh")
              .id(task.id())
              .input(OUT + "/base.bundle", bundle)
              .env(task.env())
              .env("AGENTVM_GIT_BASE", base)
              .env("AGENTVM_AGENT_CMD", task.command())
              .env("AGENTVM_AGENT_SECS", Long.toString(Math.max(1, task.timeout().toSeconds())))
              .env(
                  "AGENTVM_GIT_DIRTY",
                  task.onDirty() == GitTask.DirtyPolicy.FAIL ? "fail" : "commit")
              .env("AGENTVM_GIT_NAME", task.authorName())
              .env("AGENTVM_GIT_EMAIL", task.authorEmail())
              .timeout(task.timeout().plus(GIT_RESERVE))
              .outputLimit(task.outputLimit())
              .outputFiles(OutputLimits.DEFAULT)
              .outputDirectory(scratch.resolve("out"));
      task.secretEnv().forEach(req::secretEnv);
      task.files().forEach(req::input);
      ExecutionResult r = execute(task, req.build());
      return collect(task, git, base, r, scratch, t0);
    } finally {
      try {
        Trees.delete(scratch);
      } catch (IOException e) {
        // the error may name a file the guest made
        LOG.warn("git task {}: cannot remove {}: {}", task.id(), scratch, LogText.clean(e));
      }
    }
  }

  private ExecutionResult execute(GitTask task, ExecutionRequest req) {
    try {
      if (task.slot().isEmpty()) {
        return executor.execute(req);
      }
      if (slots == null || slotSpec == null || slotSandboxes == null) {
        throw fail(task, Reason.INVALID, "the task asks for a slot, but the runner has no slots()");
      }
      String name = task.slot().get();
      try (PersistentSlots.Slot slot = slots.acquire(name, task.slotSize(), task.id(), slotWait);
          AgentExecutor ex = slotExecutor(slotSandboxes, slotSpec, slot)) {
        // the executor closes the sandbox (a graceful power-off) before execute returns, so the
        // slot's file system is flushed and no VM holds the disk when the slot is released
        return ex.execute(req);
      } catch (PersistentSlots.SlotBusyException e) {
        throw fail(task, Reason.SLOT_BUSY, e.getMessage(), null, e);
      } catch (StorageException e) {
        throw fail(task, Reason.EXECUTION, e.getMessage(), null, e);
      }
    } catch (ExecutionFailedException e) {
      throw fail(task, Reason.EXECUTION, redact(task, String.valueOf(e.getMessage())), null, e);
    }
  }

  private AgentExecutor slotExecutor(
      Sandboxes sandboxes, SandboxSpec spec, PersistentSlots.Slot slot) {
    SandboxSpec.AttachedDisk disk =
        new SandboxSpec.AttachedDisk(slot.disk(), "/slots/" + slot.name());
    AgentExecutor.Builder b =
        AgentExecutor.builder(sandboxes)
            .sandbox(spec.withAttachedDisk(disk))
            .maxConcurrent(1) // the disk is attached to one sandbox at a time
            .name("git-slot");
    if (audit != null) {
      b.auditLog(audit);
    }
    return b.build();
  }

  private GitTaskResult collect(
      GitTask task, HostGit git, String base, ExecutionResult r, Path scratch, long t0) {
    Path out = scratch.resolve("out").resolve(OUT);
    String stdout = redact(task, r.stdoutText());
    String stderr = redact(task, r.stderrText());
    if (r.state() == TaskState.TIMED_OUT) {
      throw fail(task, Reason.TIMED_OUT, "the guest ran out of time (" + r.runTime() + ")");
    }
    String step = guestLine(task, out, "step", MAX_STEP_FILE, true);
    if (r.exitCode() != 0) {
      throw fail(
          task,
          Reason.EXECUTION,
          "the guest's git step '"
              + (step == null ? "start" : LogText.clean(step))
              + "' failed with exit code "
              + r.exitCode()
              + ": "
              + tail(stderr));
    }
    String patch = guestText(task, out, "uncommitted.patch", MAX_PATCH_FILE, false);
    if (patch != null) {
      patch = redact(task, patch);
    }
    String dirty = guestLine(task, out, "dirty", MAX_SMALL_FILE, false);
    int agentExit = (int) parseLong(guestLine(task, out, "agent-exit", MAX_SMALL_FILE, false), -1);
    // busybox timeout exits 137 after its KILL (128 + 9); a KILL from elsewhere (the guest's OOM
    // killer) also gives 137, but sooner
    long secs = parseLong(guestLine(task, out, "agent-secs", MAX_SMALL_FILE, false), -1);
    if (agentExit == 137 && secs >= task.timeout().toSeconds() - 1) {
      throw fail(
          task,
          Reason.TIMED_OUT,
          "the agent did not finish within " + task.timeout() + "; nothing was brought back",
          patch,
          null);
    }
    if (agentExit != 0) {
      throw fail(
          task,
          Reason.AGENT_FAILED,
          "the agent exited with " + agentExit + "; nothing was brought back: " + tail(stderr),
          patch,
          null);
    }
    if ("kept".equals(dirty)) {
      throw fail(
          task,
          Reason.DIRTY_WORK_TREE,
          "the agent left uncommitted changes; nothing was brought back, the changes are in"
              + " uncommittedPatch() (or set onDirty(AUTO_COMMIT))",
          patch,
          null);
    }
    String head = guestLine(task, out, "head", MAX_SMALL_FILE, false);
    if (head == null) {
      throw fail(task, Reason.EXECUTION, "the guest reported no head commit");
    }
    Duration took;
    if (head.equals(base)) {
      took = Duration.ofNanos(System.nanoTime() - t0);
      return new GitTaskResult(
          task.id(),
          task.branch(),
          GitTaskResult.Outcome.NO_CHANGES,
          base,
          base,
          java.util.Optional.empty(),
          tree(task, git, base),
          0,
          stdout,
          stderr,
          java.util.Optional.ofNullable(patch),
          r.vm(),
          took);
    }
    // the slow part, outside the lock: objects are checked and added (no ref is written, and
    // concurrent fetches into one repository are safe)
    String agentCommit;
    try {
      agentCommit = git.fetchBundle(out.resolve("result.bundle"), scratch, maxBundleBytes);
    } catch (IOException e) {
      throw fail(
          task,
          Reason.EXECUTION,
          "bringing the work back failed: " + redact(task, String.valueOf(e.getMessage())),
          null,
          e);
    }
    if (!agentCommit.equals(head)) {
      throw fail(
          task,
          Reason.EXECUTION,
          "the bundle's commit " + agentCommit + " is not the guest's head " + LogText.clean(head));
    }
    // under the lock only what must be atomic: reading the tip, deciding, moving the ref
    synchronized (REPO_LOCKS.computeIfAbsent(git.commonDir(), k -> new Object())) {
      try {
        String tip = git.branchTip(task.branch());
        GitTaskResult.Outcome outcome;
        String now;
        String msg = "agent-vm task " + task.id();
        if (tip == null) {
          git.updateBranch(task.branch(), agentCommit, null, msg);
          outcome = GitTaskResult.Outcome.CREATED;
          now = agentCommit;
        } else if (tip.equals(agentCommit) || git.isAncestor(tip, agentCommit)) {
          git.updateBranch(task.branch(), agentCommit, tip, msg + " (fast-forward)");
          outcome = GitTaskResult.Outcome.FAST_FORWARDED;
          now = agentCommit;
        } else if (!task.mergeIfDiverged()) {
          throw fail(
              task,
              Reason.BRANCH_DIVERGED,
              "branch "
                  + task.branch()
                  + " exists at "
                  + tip
                  + " and the agent's commit "
                  + agentCommit
                  + " does not descend from it; the branch is unchanged (ask for a merge, or"
                  + " use another branch)");
        } else {
          HostGit.Merge m =
              git.merge(
                  tip,
                  agentCommit,
                  "Merge agent-vm task " + task.id() + " into " + task.branch(),
                  task.authorName(),
                  task.authorEmail());
          if (m.commit() == null) {
            throw fail(
                task,
                Reason.MERGE_CONFLICT,
                "merging the agent's work into "
                    + task.branch()
                    + " conflicts in "
                    + m.conflicts()
                    + "; the branch is unchanged",
                null,
                m.conflicts(),
                null);
          }
          git.updateBranch(task.branch(), m.commit(), tip, msg + " (merge)");
          outcome = GitTaskResult.Outcome.MERGED;
          now = m.commit();
        }
        took = Duration.ofNanos(System.nanoTime() - t0);
        return new GitTaskResult(
            task.id(),
            task.branch(),
            outcome,
            base,
            agentCommit,
            java.util.Optional.of(now),
            git.tree(agentCommit),
            0,
            stdout,
            stderr,
            "committed".equals(dirty)
                ? java.util.Optional.ofNullable(patch)
                : java.util.Optional.empty(),
            r.vm(),
            took);
      } catch (IOException e) {
        throw fail(
            task,
            Reason.EXECUTION,
            "bringing the work back failed: " + redact(task, String.valueOf(e.getMessage())),
            null,
            e);
      }
    }
  }

  private String tree(GitTask task, HostGit git, String commit) {
    try {
      return git.tree(commit);
    } catch (IOException e) {
      throw fail(task, Reason.EXECUTION, e.getMessage(), null, e);
    }
  }

  /** {@code text} with every secret value of the task replaced by {@link #REDACTED}. */
  static String redact(GitTask task, String text) {
    return Redaction.redact(text, task.secretEnv().values());
  }

  private static long parseLong(@Nullable String s, long otherwise) {
    try {
      return s == null ? otherwise : Long.parseLong(s.trim());
    } catch (NumberFormatException e) {
      return otherwise;
    }
  }

  private static String tail(String s) {
    String t = s.strip();
    return t.length() > 2000 ? "..." + t.substring(t.length() - 2000) : t;
  }

  /**
   * The text of the guest-written control file {@code name} in {@code dir} (as is: a patch keeps
   * its last newline), or null if there is none (or it is not a regular file). At most {@code max}
   * bytes are read: beyond that the text is cut ({@code truncate}, for diagnostics) or the task
   * fails.
   */
  /** {@link #guestText}, trimmed: a word, a number or an object id. */
  static @Nullable String guestLine(
      GitTask task, Path dir, String name, int max, boolean truncate) {
    String s = guestText(task, dir, name, max, truncate);
    return s == null ? null : s.trim();
  }

  static @Nullable String guestText(
      GitTask task, Path dir, String name, int max, boolean truncate) {
    Path p = dir.resolve(name);
    try {
      BasicFileAttributes a =
          Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
      if (!a.isRegularFile()) {
        return null;
      }
      try (InputStream in = Files.newInputStream(p, LinkOption.NOFOLLOW_LINKS)) {
        byte[] b = in.readNBytes(max);
        boolean more = in.read() >= 0;
        if (more && !truncate) {
          throw fail(
              task,
              Reason.EXECUTION,
              "the guest's " + name + " has more than " + max + " bytes; nothing was brought back");
        }
        String s = new String(b, StandardCharsets.UTF_8);
        return more ? s + "...[truncated]" : s;
      }
    } catch (IOException e) {
      return null;
    }
  }

  private static GitTaskException fail(GitTask task, Reason reason, String message) {
    return fail(task, reason, message, null, null);
  }

  private static GitTaskException fail(
      GitTask task,
      Reason reason,
      @Nullable String message,
      @Nullable String patch,
      @Nullable Throwable cause) {
    return fail(task, reason, message, patch, List.of(), cause);
  }

  private static GitTaskException fail(
      GitTask task,
      Reason reason,
      @Nullable String message,
      @Nullable String patch,
      List<String> conflicts,
      @Nullable Throwable cause) {
    return new GitTaskException(
        task.id(), reason, redact(task, String.valueOf(message)), patch, conflicts, cause);
  }

  private void fire(java.util.function.Consumer<GitTaskListener> event) {
    for (GitTaskListener l : listeners) {
      events.execute(
          () -> {
            try {
              event.accept(l);
            } catch (RuntimeException e) {
              LOG.warn("git task listener {} failed: {}", l, LogText.clean(e));
            }
          });
    }
  }

  /** Waits up to a minute for running tasks and queued events, then stops the threads. */
  @Override
  public void close() {
    tasks.shutdown();
    try {
      if (!tasks.awaitTermination(1, TimeUnit.MINUTES)) {
        LOG.warn("git tasks still running at close; they go on without listeners");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    events.shutdown();
    try {
      events.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Configures a {@link GitTaskRunner}. */
  public static final class Builder {
    private final AgentExecutor executor;
    private @Nullable Sandboxes slotSandboxes;
    private @Nullable SandboxSpec slotSpec;
    private @Nullable PersistentSlots slots;
    private Duration slotWait = Duration.ofMinutes(1);
    private @Nullable AuditLog audit;
    private final List<GitTaskListener> listeners = new ArrayList<>();
    private Path workRoot = AgentVmPaths.stateRoot().resolve("git-tasks");
    private int parallelism = 4;
    private long maxBundleBytes = DEFAULT_MAX_BUNDLE_BYTES;

    private Builder(AgentExecutor executor) {
      this.executor = Objects.requireNonNull(executor, "executor");
    }

    /**
     * Enables tasks with a persistent slot: such a task gets a sandbox of its own from {@code
     * sandboxes}, made from {@code spec} with the slot's disk attached at {@code /slots/<name>}
     * ({@link SandboxSpec.AttachedDisk}: booted, never restored or kept ready, powered off
     * gracefully so the slot's file system is flushed before the slot is released). The spec's
     * image must have git ({@code MicroImage.PYTHON_GIT}).
     */
    public Builder slots(Sandboxes sandboxes, SandboxSpec spec, PersistentSlots slots) {
      this.slotSandboxes = Objects.requireNonNull(sandboxes, "sandboxes");
      this.slotSpec = Objects.requireNonNull(spec, "spec");
      this.slots = Objects.requireNonNull(slots, "slots");
      return this;
    }

    /** How long a task waits for a slot another task holds (default one minute). */
    public Builder slotWait(Duration wait) {
      this.slotWait = wait;
      return this;
    }

    /** The audit log of slot tasks' executors (the main executor has its own). */
    public Builder auditLog(AuditLog audit) {
      this.audit = audit;
      return this;
    }

    public Builder listener(GitTaskListener listener) {
      listeners.add(Objects.requireNonNull(listener));
      return this;
    }

    /** Where bundles are staged on the host (removed after each task). */
    public Builder workRoot(Path dir) {
      this.workRoot = dir;
      return this;
    }

    /** Tasks {@link #submit} runs at once (default 4). */
    public Builder parallelism(int n) {
      if (n < 1) {
        throw new IllegalArgumentException("parallelism must be >= 1");
      }
      this.parallelism = n;
      return this;
    }

    /**
     * The largest result bundle taken from a guest (default {@link
     * GitTaskRunner#DEFAULT_MAX_BUNDLE_BYTES}); a larger one fails the task before git reads it.
     */
    public Builder maxBundleBytes(long bytes) {
      if (bytes < 1) {
        throw new IllegalArgumentException("maxBundleBytes must be >= 1");
      }
      this.maxBundleBytes = bytes;
      return this;
    }

    public GitTaskRunner build() {
      return new GitTaskRunner(this);
    }
  }
}
