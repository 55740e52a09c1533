package dev.agentvm.execution;

import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import dev.agentvm.core.VmCrashedException;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.HeartbeatMonitor;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.execution.internal.AgentVmMeter;
import dev.agentvm.execution.internal.Meters;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.LogContext;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Redaction;
import dev.agentvm.internal.Threads;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.storage.ExtractedOutput;
import dev.agentvm.storage.FilesystemShare;
import edu.umd.cs.findbugs.annotations.SuppressFBWarnings;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs agents' code in fresh VMs from a {@link VMPool}: acquire a VM, put the input files into its
 * workspace, run the code with a deadline (output streamed to the request's listener), take the
 * output files out, and give the VM back to be destroyed (a VM that ran untrusted code is never
 * reused). Each step is metered, audited and watched for anomalies. Thread-safe: many executions
 * may run at once, one per VM.
 *
 * <pre>{@code
 * try (CloneVmFactory factory = CloneVmFactory.capture(conn, template, Duration.ofMinutes(2));
 *      VMPool pool = VMPool.start(factory, PoolConfig.DEFAULT);
 *      AgentExecutor executor = AgentExecutor.builder(pool).build()) {
 *   ExecutionResult r = executor.execute(ExecutionRequest.script("echo hi", "sh").build());
 * }
 * }</pre>
 *
 * <p>Failures are {@link ExecutionFailedException}s naming the step ({@link VmCrashedException} as
 * the cause when QEMU died); a code that outlives its timeout is stopped with its whole process
 * tree and its result says {@link TaskState#TIMED_OUT}. Closing the executor cancels what still
 * runs and removes quarantined VMs; it does not close the pool.
 *
 * <p>Metrics go where the pool's go ({@link VMPool#bindTo}), tagged with the pool's name; {@link
 * Builder#meterRegistry} binds the pool to that registry too. While an execution runs, its id is in
 * the MDC under {@code execution} (with {@code pool}, and {@code vm} once it has one), on whichever
 * thread runs it; the caller's MDC is as before afterwards.
 */
// "try": the MDC scopes are try-with-resources blocks whose variable is unused by design
@SuppressWarnings("try")
public final class AgentExecutor implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(AgentExecutor.class);

  /** Where the workspace's directories are in the guest; the code runs in {@code work}. */
  public static final String GUEST_WORKDIR = "/workspace/work";

  private final VMPool pool;
  private final Meters meters;
  private final AuditLog audit;
  private final AnomalyDetector anomalies;
  private final List<ExecutionListener> listeners;
  private final Path outputRoot;
  private final Duration acquireTimeout;
  private final Duration sampleInterval;
  private final HeartbeatMonitor.Settings heartbeat;
  private final ExecutorService threads;
  private final List<Task> running = new CopyOnWriteArrayList<>();
  private final List<PooledVm> quarantined = new CopyOnWriteArrayList<>();

  private AgentExecutor(Builder b) {
    this.pool = b.pool;
    MeterRegistry r = b.registry;
    if (r != null) {
      pool.bindTo(r);
    }
    this.meters = pool.meters();
    this.audit = b.audit;
    this.anomalies = b.anomalies;
    this.listeners = List.copyOf(b.listeners);
    this.outputRoot = b.outputRoot;
    this.acquireTimeout = b.acquireTimeout;
    this.sampleInterval = b.sampleInterval;
    this.heartbeat = b.heartbeat;
    this.threads = Executors.newCachedThreadPool(Threads.numberedDaemons("agentvm-exec"));
    meters.counter(AgentVmMeter.VM_CRASHES, Tags.empty()); // at 0 from the start, to alert on
  }

  public static Builder builder(VMPool pool) {
    return new Builder(pool);
  }

  /**
   * Runs a request and waits for its result.
   *
   * @throws ExecutionFailedException if a step failed (see {@link ExecutionFailedException#step()})
   */
  public ExecutionResult execute(ExecutionRequest request) {
    Task task = new Task(request);
    running.add(task);
    try {
      return task.run();
    } finally {
      running.remove(task);
    }
  }

  /** Starts a request on a thread of the executor's and returns at once. */
  public Execution submit(ExecutionRequest request) {
    Task task = new Task(request);
    running.add(task);
    CompletableFuture<ExecutionResult> f = new CompletableFuture<>();
    threads.execute(
        () -> {
          try {
            f.complete(task.run());
          } catch (Throwable t) {
            f.completeExceptionally(t);
          } finally {
            running.remove(task);
          }
        });
    return new Execution(request.id(), f, task);
  }

  /** VMs kept paused for inspection after a {@link AnomalyDetector.Response#QUARANTINE_VM}. */
  public List<VM> quarantined() {
    return quarantined.stream().map(PooledVm::vm).toList();
  }

  /** Cancels running executions and removes quarantined VMs. Does not close the pool. */
  @Override
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "the VM name is ours; the error text is cleaned with LogText")
  public void close() {
    running.forEach(Task::cancel);
    threads.shutdown();
    try {
      threads.awaitTermination(60, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (PooledVm vm : quarantined) {
      try {
        WorkspaceVms.destroy(vm, Duration.ZERO);
      } catch (RuntimeException e) {
        LOG.warn(
            "removing quarantined {}: {}",
            vm.name(),
            LogText.clean(String.valueOf(e.getMessage())));
      }
    }
    quarantined.clear();
  }

  /** One execution's life; package-private for {@link Execution}. */
  final class Task {
    private final ExecutionRequest req;
    private final long submittedNanos = System.nanoTime();
    private final Object lock = new Object();
    private volatile @Nullable TaskState state; // null until PENDING
    private volatile String vmName = "";
    private volatile boolean cancelled;
    private volatile AgentClient.@Nullable Execution exec; // guarded by lock for kill
    private volatile @Nullable String quarantineReason;
    private volatile @Nullable Anomaly killedBy;
    private final AtomicLong outputBytes = new AtomicLong();

    Task(ExecutionRequest req) {
      this.req = req;
    }

    @Nullable TaskState state() {
      return state;
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "the id is validated by ExecutionRequest; the error text is cleaned")
    void cancel() {
      cancelled = true;
      AgentClient.Execution e = exec;
      if (e != null) {
        try {
          e.kill(Duration.ofSeconds(5));
        } catch (IOException | RuntimeException k) {
          LOG.debug("{}: kill on cancel: {}", req.id(), guestText(k.getMessage()));
        }
      }
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a validated id, enum states and a VM name of ours")
    private void to(TaskState next) {
      TaskState from;
      synchronized (lock) {
        from = state;
        if (from != null && !from.canTransitionTo(next)) {
          throw new IllegalStateException(
              req.id() + ": " + from + " -> " + next + " is not allowed");
        }
        state = next;
      }
      LOG.debug("{}: {} -> {}{}", req.id(), from, next, vmName.isEmpty() ? "" : " on " + vmName);
      for (ExecutionListener l : listeners) {
        try {
          l.onStateChange(req.id(), from, next, vmName);
        } catch (RuntimeException e) {
          LOG.warn("execution listener threw", e);
        }
      }
    }

    /** Guest-derived text for a log line: secret values redacted, control characters removed. */
    private String guestText(@Nullable Object text) {
      return LogText.clean(Redaction.redact(String.valueOf(text), req.secretEnv().values()));
    }

    private void audit(String event, Map<String, Object> details) {
      try {
        // guest-chosen text in the details (names, messages) may carry a secret the guest was given
        audit.record(
            new AuditEvent(
                Instant.now(),
                event,
                req.id(),
                vmName,
                Redaction.redactDetails(details, req.secretEnv().values())));
      } catch (RuntimeException e) {
        LOG.warn("audit log threw", e);
      }
    }

    ExecutionResult run() {
      try (LogContext.Scope e = LogContext.put(LogContext.EXECUTION, req.id());
          LogContext.Scope p = LogContext.put(LogContext.POOL, pool.name())) {
        return runTask();
      }
    }

    private ExecutionResult runTask() {
      to(TaskState.PENDING);
      audit("execution.submitted", submittedDetails());
      react(anomalies.onSubmit(req.id(), System.nanoTime()), null);
      PooledVm pv;
      long t0 = System.nanoTime();
      try {
        if (cancelled) {
          throw new ExecutionCancelledException(req.id(), "acquire");
        }
        pv = pool.acquire(acquireTimeout);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw fail("acquire", "interrupted", e);
      } catch (ExecutionCancelledException e) {
        to(TaskState.CANCELLED);
        count(TaskState.CANCELLED);
        throw e;
      } catch (RuntimeException e) {
        throw fail("acquire", e.getMessage(), e);
      }
      vmName = pv.name();
      try (LogContext.Scope v = LogContext.put(LogContext.VM, pv.name())) {
        to(TaskState.PREPARING);
        audit(
            "vm.acquired",
            Map.of("kind", pv.kind(), "waitMillis", (System.nanoTime() - t0) / 1_000_000));
        String discard = "used";
        try {
          return runOn(pv);
        } catch (ExecutionFailedException e) {
          discard = e.getCause() instanceof VmCrashedException ? "crashed" : "failed";
          throw e;
        } finally {
          release(pv, discard);
        }
      }
    }

    private ExecutionResult runOn(PooledVm pv) {
      String step = "inject";
      try {
        VM vm = pv.vm();
        FilesystemShare ws = pv.workspace();
        if (vm == null || ws == null) {
          throw new IllegalStateException(pv.name() + " has no VM or no workspace to run code in");
        }
        List<Map<String, Object>> injected = new ArrayList<>();
        for (ExecutionRequest.InputFile f : req.inputs()) {
          checkCancelled(step);
          Path p =
              f.content() != null
                  ? ws.addInput(f.path(), f.content())
                  : ws.addInput(f.path(), Objects.requireNonNull(f.source(), "source"));
          injected.add(Map.of("path", f.path(), "bytes", java.nio.file.Files.size(p)));
        }
        audit("files.injected", Map.of("files", injected));
        checkCancelled(step);
        step = "exec";
        ExecResult r = exec(pv, vm);
        Anomaly killer = killedBy;
        if (killer != null) {
          throw fail(
              "exec", "stopped by anomaly rule " + killer.rule() + ": " + killer.detail(), null);
        }
        step = "extract";
        TaskState end =
            cancelled
                ? TaskState.CANCELLED
                : r.timedOut() ? TaskState.TIMED_OUT : TaskState.COMPLETED;
        ExtractedOutput out;
        if (end == TaskState.CANCELLED) {
          throw new ExecutionCancelledException(req.id(), "exec");
        }
        Path dest = req.outputDirectory().orElse(outputRoot.resolve(req.id()));
        // Nothing in the guest may change the output while the host copies it (a file grown after
        // the scan, a background process still writing): the VM is paused first. It is destroyed
        // afterwards anyway; a paused VM is destroyed without a grace period.
        vm.pause();
        out = ws.extractOutput(dest, req.outputFiles());
        audit(
            "output.extracted",
            Map.of(
                "directory", dest.toString(),
                "files", out.files().size(),
                "bytes", out.totalBytes(),
                // names the guest chose
                "skipped", out.skipped().stream().map(this::guestText).toList()));
        Duration total = Duration.ofNanos(System.nanoTime() - submittedNanos);
        to(end);
        count(end);
        meters.record(
            AgentVmMeter.EXECUTION_DURATION,
            Tags.of("outcome", end.name().toLowerCase(Locale.ROOT)),
            total.toNanos());
        audit(
            "execution.completed",
            Map.of(
                "state", end.name(), "exitCode", r.exitCode(), "durationMillis", total.toMillis()));
        return new ExecutionResult(
            req.id(),
            end,
            r.exitCode(),
            r.stdout(),
            r.stderr(),
            r.stdoutTruncated(),
            r.stderrTruncated(),
            out,
            total,
            r.duration(),
            pv.name());
      } catch (ExecutionCancelledException e) {
        TaskState s = state;
        if (s != null && !s.isTerminal()) {
          to(TaskState.CANCELLED);
          count(TaskState.CANCELLED);
        }
        audit("execution.cancelled", Map.of("step", e.step()));
        throw e;
      } catch (ExecutionFailedException e) {
        throw e;
      } catch (IOException | RuntimeException e) {
        Throwable cause = crashCause(pv, e);
        throw fail(step, cause.getMessage(), cause);
      }
    }

    private ExecResult exec(PooledVm pv, VM vm) throws IOException {
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(10));
      HeartbeatMonitor hb = vm.startHeartbeat(heartbeat, (from, to, silence) -> {});
      ExecRequest er =
          (req.script().isEmpty()
                  ? ExecRequest.command(req.argv().toArray(String[]::new))
                  : ExecRequest.script(req.script(), req.argv().toArray(String[]::new)))
              .withEnv(req.allEnv())
              .withCwd(GUEST_WORKDIR)
              .withStdin(req.stdin())
              .withTimeout(req.timeout())
              .withOutputLimit(req.outputLimit());
      OutputListener counting =
          new OutputListener() {
            @Override
            public void onStdout(byte[] chunk) {
              outputBytes.addAndGet(chunk.length);
              req.listener().onStdout(chunk);
            }

            @Override
            public void onStderr(byte[] chunk) {
              outputBytes.addAndGet(chunk.length);
              req.listener().onStderr(chunk);
            }
          };
      to(TaskState.RUNNING);
      audit("exec.started", Map.of("argv", req.argv(), "timeoutMillis", req.timeout().toMillis()));
      long start = System.nanoTime();
      AgentClient.Execution e = agent.execAsync(er, counting);
      exec = e;
      if (cancelled) {
        cancel();
      }
      // the guest enforces the timeout; the host allows for the kill grace and a slow guest
      long hostDeadline = start + req.timeout().plus(er.killGrace()).plusSeconds(15).toNanos();
      long peakMem = -1;
      double peakLoad = -1;
      while (true) {
        try {
          ExecResult r = e.result().get(sampleInterval.toMillis(), TimeUnit.MILLISECONDS);
          react(anomalies.onCompleted(req.id(), pv.name(), r.duration(), peakMem, peakLoad), pv);
          audit(
              "exec.finished",
              Map.of(
                  "exitCode", r.exitCode(),
                  "timedOut", r.timedOut(),
                  "runMillis", r.duration().toMillis(),
                  "stdoutBytes", r.stdout().length,
                  "stderrBytes", r.stderr().length));
          return r;
        } catch (TimeoutException t) {
          if (System.nanoTime() > hostDeadline) {
            cancel();
            throw new IOException(
                "the guest did not end the command within its timeout of "
                    + req.timeout().toMillis()
                    + " ms and did not answer since");
          }
          if (hb.health() == HeartbeatMonitor.Health.DEAD) {
            throw new IOException(
                "the guest agent stopped answering ("
                    + hb.silence().toMillis()
                    + " ms of silence): the VM is hung");
          }
          StatusReport s = sample(agent);
          if (s != null) {
            long used = s.memTotalKiB() - s.memAvailableKiB();
            peakMem = Math.max(peakMem, used);
            peakLoad = Math.max(peakLoad, s.load1());
            react(
                anomalies.onSample(
                    req.id(),
                    pv.name(),
                    new AnomalyDetector.Sample(
                        used,
                        s.load1(),
                        s.processCount(),
                        outputBytes.get(),
                        Duration.ofNanos(System.nanoTime() - start))),
                pv);
          }
        } catch (java.util.concurrent.ExecutionException x) {
          Throwable c = x.getCause();
          if (c == null) {
            throw new IOException(x.getMessage(), x);
          }
          throw c instanceof IOException io ? io : new IOException(c.getMessage(), c);
        } catch (InterruptedException x) {
          Thread.currentThread().interrupt();
          cancel();
          throw new IOException("interrupted", x);
        }
      }
    }

    private @Nullable StatusReport sample(AgentClient agent) {
      try {
        return agent.status(Duration.ofSeconds(2));
      } catch (IOException | RuntimeException e) {
        return null; // a busy guest may be slow to answer; the heartbeat judges liveness
      }
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a validated id, our rule names, details formatted from numbers, an enum")
    private void react(List<Anomaly> found, @Nullable PooledVm pv) {
      for (Anomaly a : found) {
        Anomaly withVm =
            a.vm().isEmpty() && pv != null
                ? new Anomaly(a.executionId(), pv.name(), a.rule(), a.detail(), a.response())
                : a;
        LOG.warn("anomaly in {}: {}: {} ({})", req.id(), a.rule(), a.detail(), a.response());
        meters.increment(AgentVmMeter.ANOMALIES, Tags.of("rule", a.rule()));
        audit(
            "anomaly.detected",
            Map.of("rule", a.rule(), "detail", a.detail(), "response", a.response().name()));
        switch (withVm.response()) {
          case LOG -> {}
          case KILL_EXECUTION -> {
            killedBy = withVm;
            cancelForAnomaly();
          }
          case QUARANTINE_VM -> {
            if (pv != null) {
              quarantineReason = a.rule();
            }
          }
        }
      }
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "the id is validated by ExecutionRequest; the error text is cleaned")
    private void cancelForAnomaly() {
      AgentClient.Execution e = exec;
      if (e != null) {
        try {
          e.kill(Duration.ofSeconds(5));
        } catch (IOException | RuntimeException k) {
          LOG.debug("{}: kill for anomaly: {}", req.id(), guestText(k.getMessage()));
        }
      }
    }

    private void checkCancelled(String step) {
      if (cancelled) {
        throw new ExecutionCancelledException(req.id(), step);
      }
    }

    private Throwable crashCause(PooledVm pv, Exception e) {
      VM vm = pv.vm();
      if (vm == null) {
        return e;
      }
      VMState s;
      try {
        s = vm.state();
        // the channel closes as QEMU dies, a moment before libvirt has noticed: let it settle
        long end = System.nanoTime() + Duration.ofSeconds(3).toNanos();
        while (s == VMState.RUNNING
            && e instanceof dev.agentvm.core.agent.AgentChannelClosedException
            && System.nanoTime() < end) {
          Thread.sleep(50);
          s = vm.state();
        }
      } catch (RuntimeException x) {
        return e;
      } catch (InterruptedException x) {
        Thread.currentThread().interrupt();
        return e;
      }
      if (s == VMState.CRASHED || s == VMState.STOPPED || s == VMState.UNDEFINED) {
        meters.increment(AgentVmMeter.VM_CRASHES, Tags.empty());
        return new VmCrashedException(
            "VM "
                + pv.name()
                + " is "
                + s
                + " ("
                + e.getMessage()
                + "); console log: "
                + vm.consoleLog(),
            e);
      }
      return e;
    }

    private ExecutionFailedException fail(
        String step, @Nullable String message, @Nullable Throwable cause) {
      TaskState s = state;
      if (s != null && !s.isTerminal()) {
        to(TaskState.FAILED);
      }
      count(TaskState.FAILED);
      // the message may carry the guest's words (an agent's ERROR, a console log)
      audit("execution.failed", Map.of("step", step, "error", guestText(message)));
      return new ExecutionFailedException(req.id(), step, message, cause);
    }

    private void count(TaskState end) {
      meters.increment(
          AgentVmMeter.EXECUTIONS, Tags.of("outcome", end.name().toLowerCase(Locale.ROOT)));
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a validated id, our VM name and rule name; error texts are cleaned")
    private void release(PooledVm pv, String reason) {
      try {
        VM vm = pv.vm();
        String quarantineRule = quarantineReason;
        if (quarantineRule != null && vm != null) {
          pool.detach(pv);
          try {
            vm.pause();
          } catch (RuntimeException e) {
            LOG.debug("pausing quarantined {}: {}", pv.name(), guestText(e.getMessage()));
          }
          quarantined.add(pv);
          LOG.warn(
              "{} quarantined after {} (kept paused: AgentExecutor.quarantined())",
              pv.name(),
              quarantineRule);
          audit("vm.quarantined", Map.of("rule", quarantineRule));
          return;
        }
        String why = state == TaskState.TIMED_OUT ? "timed_out" : reason;
        pool.discard(pv, why);
        audit("vm.released", Map.of("disposal", "destroyed", "reason", why));
      } catch (RuntimeException e) {
        LOG.warn("{}: giving back {} failed: {}", req.id(), pv.name(), guestText(e.getMessage()));
      }
    }

    private Map<String, Object> submittedDetails() {
      Map<String, Object> d = new LinkedHashMap<>();
      d.put("argv", req.argv());
      d.put("scriptChars", req.script().length());
      d.put("inputs", req.inputs().stream().map(ExecutionRequest.InputFile::path).toList());
      d.put("env", req.env());
      // the names of secret variables, never their values
      d.put("secretEnv", req.secretEnv().keySet().stream().sorted().toList());
      d.put("timeoutMillis", req.timeout().toMillis());
      return d;
    }
  }

  /** Settings of an {@link AgentExecutor}. */
  public static final class Builder {
    private final VMPool pool;
    private @Nullable MeterRegistry registry;
    private AuditLog audit = AuditLog.NONE;
    private AnomalyDetector anomalies = AnomalyDetector.builder().build();
    private final List<ExecutionListener> listeners = new ArrayList<>();
    private Path outputRoot = AgentVmPaths.stateRoot().resolve("outputs");
    private Duration acquireTimeout = Duration.ofMinutes(2);
    private Duration sampleInterval = Duration.ofSeconds(1);
    private HeartbeatMonitor.Settings heartbeat = HeartbeatMonitor.Settings.DEFAULT;

    private Builder(VMPool pool) {
      this.pool = Objects.requireNonNull(pool, "pool");
    }

    /**
     * Reports the executor's meters, and its pool's, into {@code registry}: the pool is bound to it
     * ({@link VMPool#bindTo}) when the executor is built. Without this the executor's meters go
     * wherever the pool's go.
     */
    public Builder meterRegistry(MeterRegistry registry) {
      this.registry = Objects.requireNonNull(registry);
      return this;
    }

    public Builder auditLog(AuditLog audit) {
      this.audit = Objects.requireNonNull(audit);
      return this;
    }

    public Builder anomalyDetector(AnomalyDetector detector) {
      this.anomalies = Objects.requireNonNull(detector);
      return this;
    }

    public Builder listener(ExecutionListener listener) {
      listeners.add(Objects.requireNonNull(listener));
      return this;
    }

    /** Where extracted output files go, {@code <root>/<execution id>}, unless a request says. */
    public Builder outputRoot(Path root) {
      this.outputRoot = root.toAbsolutePath();
      return this;
    }

    public Builder acquireTimeout(Duration timeout) {
      this.acquireTimeout = Objects.requireNonNull(timeout);
      return this;
    }

    /** How often the guest is sampled (STATUS) for anomaly checks while code runs. */
    public Builder sampleInterval(Duration interval) {
      this.sampleInterval = Objects.requireNonNull(interval);
      return this;
    }

    public Builder heartbeat(HeartbeatMonitor.Settings settings) {
      this.heartbeat = Objects.requireNonNull(settings);
      return this;
    }

    public AgentExecutor build() {
      return new AgentExecutor(this);
    }
  }
}
