package dev.agentvm.execution;

import dev.agentvm.core.VmCrashedException;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.HeartbeatMonitor;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.execution.internal.AgentVmMeter;
import dev.agentvm.execution.internal.Meters;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.LogContext;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Threads;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.storage.ExtractedOutput;
import edu.umd.cs.findbugs.annotations.SuppressFBWarnings;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
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
 * Runs agents' code one request at a time in fresh sandboxes: a new sandbox per execution (handed
 * out at once when {@link Builder#keepReady} keeps some ready), the input files written into it,
 * the code run with a deadline (output streamed to the request's listener), the output files
 * brought back within the request's limits, and the sandbox closed (in the background, right after
 * the result is returned; {@link #close()} waits for it; a sandbox that ran untrusted code is never
 * reused). Each step is metered, audited and watched for anomalies. Thread-safe: many executions
 * may run at once, one per sandbox.
 *
 * <pre>{@code
 * try (LibvirtConnection conn = LibvirtConnection.open();
 *      Sandboxes sandboxes = Sandboxes.open(conn);
 *      AgentExecutor executor = AgentExecutor.builder(sandboxes).keepReady(2).build()) {
 *   ExecutionResult r = executor.execute(ExecutionRequest.script("echo hi", "sh").build());
 * }
 * }</pre>
 *
 * <p>In the guest the inputs are under {@code /workspace/input}, the code runs in {@code
 * /workspace/work}, and what it leaves in {@code /workspace/output} is copied to the host after the
 * command and its process group ended: each copy is bounded while it copies (never more than the
 * remaining budget is written), and the files arrive all together or not at all. The workspace is
 * the sandbox's own disk of {@link SandboxSpec#workspaceBytes()}: the guest cannot store more.
 *
 * <p>Failures are {@link ExecutionFailedException}s naming the step ({@link VmCrashedException} as
 * the cause when QEMU died); a code that outlives its timeout is stopped with its whole process
 * tree and its result says {@link TaskState#TIMED_OUT}. Closing the executor cancels what still
 * runs and removes quarantined sandboxes; it does not close the {@link Sandboxes}.
 *
 * <p>Metrics: a Micrometer {@link MeterBinder}, meters tagged {@code executor=<name>}
 * (docs/observability.md). While an execution runs, its id is in the MDC under {@code execution}
 * (and {@code sandbox} once it has one), on whichever thread runs it; the caller's MDC is as before
 * afterwards.
 */
// "try": the MDC scopes are try-with-resources blocks whose variable is unused by design
@SuppressWarnings("try")
public final class AgentExecutor implements AutoCloseable, MeterBinder {
  private static final Logger LOG = LoggerFactory.getLogger(AgentExecutor.class);

  /** Where the workspace's directories are in the guest; the code runs in {@code work}. */
  public static final String GUEST_WORKDIR = "/workspace/work";

  /** Where input files are put in the guest. */
  public static final String GUEST_INPUT = "/workspace/input";

  /** What is brought back from the guest. */
  public static final String GUEST_OUTPUT = "/workspace/output";

  private final String name;
  private final ExecutionVm.Source source;
  private final Meters meters;
  private final List<ExecutionObserver> observers;
  private final Path outputRoot;
  private final Duration sampleInterval;
  private final HeartbeatMonitor.Settings heartbeat;
  private final ExecutorService threads;
  private final List<Task> running = new CopyOnWriteArrayList<>();
  private final List<ExecutionVm> quarantined = new CopyOnWriteArrayList<>();
  private final java.util.concurrent.Semaphore slots;
  private final int maxQuarantined;
  private final Object quarantineLock = new Object(); // adding one and evicting over the cap

  private AgentExecutor(Builder b, ExecutionVm.Source source) {
    this.slots = new java.util.concurrent.Semaphore(b.maxConcurrent, true);
    this.maxQuarantined = b.maxQuarantined;
    this.name = b.name;
    this.source = source;
    this.meters = new Meters(Tags.of("executor", name), "executor named '" + name + "'");
    MeterRegistry r = b.registry;
    if (r != null) {
      meters.bindTo(r);
    }
    List<ExecutionObserver> o = new ArrayList<>();
    b.listeners.forEach(l -> o.add(stateListener(l)));
    o.add(new AuditTrail(b.audit));
    o.add(new ExecutorMetrics(meters));
    o.add(new AnomalyWatch(b.anomalies)); // last: what it raises is heard after the event itself
    this.observers = List.copyOf(o);
    this.outputRoot = b.outputRoot;
    this.sampleInterval = b.sampleInterval;
    this.heartbeat = b.heartbeat;
    this.threads = Executors.newCachedThreadPool(Threads.numberedDaemons("agentvm-exec"));
    meters.gauge(AgentVmMeter.QUARANTINED, Tags.empty(), quarantined, List::size);
  }

  private static ExecutionObserver stateListener(ExecutionListener l) {
    return new ExecutionObserver() {
      @Override
      public void stateChanged(Run run, @Nullable TaskState from, TaskState to) {
        l.onStateChange(run.request().id(), from, to, run.vm());
      }
    };
  }

  /** An executor making its sandboxes in {@code sandboxes}. */
  public static Builder builder(Sandboxes sandboxes) {
    return new Builder(Objects.requireNonNull(sandboxes, "sandboxes"));
  }

  /**
   * An executor making each execution's sandbox on a host of a set ({@link
   * dev.agentvm.execution.sandbox.SandboxHosts}: where the host set places it; a host that fails
   * meanwhile is passed over). {@link Builder#keepReady} is refused there: ready sandboxes are kept
   * per host ({@link Sandboxes#keepReady}).
   */
  public static Builder builder(dev.agentvm.execution.sandbox.SandboxHosts hosts) {
    Builder b = new Builder(null);
    b.hosts = Objects.requireNonNull(hosts, "hosts");
    return b;
  }

  /** An executor on machines from {@code source}: the workflow's unit tests. */
  static Builder builder(ExecutionVm.Source source) {
    Builder b = new Builder(null);
    b.source = source;
    return b;
  }

  /** Reports this executor's meters into {@code registry} too. Binding twice does nothing. */
  @Override
  public void bindTo(MeterRegistry registry) {
    meters.bindTo(registry);
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

  /**
   * The ids of sandboxes kept paused for inspection after a {@link
   * AnomalyDetector.Response#QUARANTINE_VM} ({@link Sandboxes#connect} finds them).
   */
  public List<String> quarantined() {
    return quarantined.stream().map(ExecutionVm::name).toList();
  }

  /** Cancels running executions and removes quarantined sandboxes. */
  @Override
  public void close() {
    running.forEach(Task::cancel);
    threads.shutdown();
    try {
      threads.awaitTermination(60, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (ExecutionVm vm : quarantined) {
      closeQuarantined(vm);
    }
    quarantined.clear();
    meters.close();
  }

  /**
   * Over the cap, the oldest quarantined sandboxes go: a guest must not fill the host with them.
   */
  @SuppressFBWarnings(value = "CRLF_INJECTION_LOGS", justification = "our sandbox id and a number")
  private void evictQuarantined(ExecutionVm oldest) {
    LOG.warn(
        "{} removed: more than {} quarantined sandboxes (maxQuarantined)",
        oldest.name(),
        maxQuarantined);
    closeQuarantined(oldest);
  }

  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "the sandbox id is ours; the error text is cleaned with LogText")
  private static void closeQuarantined(ExecutionVm vm) {
    try {
      vm.close();
    } catch (RuntimeException e) {
      LOG.warn(
          "removing quarantined {}: {}", vm.name(), LogText.clean(String.valueOf(e.getMessage())));
    }
  }

  /** One execution's life; package-private for {@link Execution}. */
  final class Task implements ExecutionObserver.Run {
    private final ExecutionRequest req;
    private final long submittedNanos = System.nanoTime();
    private final Object lock = new Object();
    private volatile @Nullable TaskState state; // null until PENDING
    private volatile String vmName = "";
    private volatile boolean cancelled;
    private volatile ExecutionVm.@Nullable Command command;
    private volatile @Nullable String quarantineReason;
    private volatile @Nullable Anomaly killedBy;
    private final AtomicLong outputBytes = new AtomicLong();

    Task(ExecutionRequest req) {
      this.req = req;
    }

    @Override
    public ExecutionRequest request() {
      return req;
    }

    @Override
    public String vm() {
      return vmName;
    }

    @Override
    public String template() {
      return source.template();
    }

    /**
     * Tells every observer; one that throws is logged and does not keep the event from the rest.
     */
    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a class name of ours; the exception goes to the logger as a throwable")
    private void emit(java.util.function.Consumer<ExecutionObserver> event) {
      for (ExecutionObserver o : observers) {
        try {
          event.accept(o);
        } catch (RuntimeException e) {
          LOG.warn("execution observer {} threw", o.getClass().getName(), e);
        }
      }
    }

    @Nullable TaskState state() {
      return state;
    }

    void cancel() {
      cancelled = true;
      kill("cancel");
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "the id is validated by ExecutionRequest; the error text is cleaned")
    private void kill(String why) {
      ExecutionVm.Command c = command;
      if (c != null) {
        try {
          c.kill();
        } catch (IOException | RuntimeException k) {
          LOG.debug(
              "{}: kill on {}: {}", req.id(), why, AuditTrail.guestText(this, k.getMessage()));
        }
      }
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a validated id, enum states and a sandbox id of ours")
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
      emit(o -> o.stateChanged(this, from, next));
    }

    ExecutionResult run() {
      try (LogContext.Scope e = LogContext.put(LogContext.EXECUTION, req.id())) {
        return runTask();
      }
    }

    private ExecutionResult runTask() {
      to(TaskState.PENDING);
      emit(o -> o.submitted(this));
      long t0 = System.nanoTime();
      try {
        while (!slots.tryAcquire(100, TimeUnit.MILLISECONDS)) {
          checkCancelled("acquire");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw fail("acquire", "interrupted while waiting for a slot", e);
      } catch (ExecutionCancelledException e) {
        cancelledAt(e);
        throw e;
      }
      try {
        return acquireAndRun(t0);
      } finally {
        slots.release();
      }
    }

    private ExecutionResult acquireAndRun(long t0) {
      ExecutionVm vm;
      try {
        checkCancelled("acquire");
        vm = source.acquire();
      } catch (ExecutionCancelledException e) {
        cancelledAt(e);
        throw e;
      } catch (RuntimeException e) {
        throw fail("acquire", e.getMessage(), e);
      }
      vmName = vm.name();
      try (LogContext.Scope v = LogContext.put(LogContext.SANDBOX, vm.name())) {
        to(TaskState.PREPARING);
        Duration waited = Duration.ofNanos(System.nanoTime() - t0);
        emit(o -> o.vmAcquired(this, waited));
        String discard = "used";
        try {
          return runOn(vm);
        } catch (ExecutionFailedException e) {
          discard = e.getCause() instanceof VmCrashedException ? "crashed" : "failed";
          throw e;
        } finally {
          release(vm, discard);
        }
      }
    }

    private ExecutionResult runOn(ExecutionVm vm) {
      String step = "inject";
      try {
        List<Map<String, Object>> injected = new ArrayList<>();
        vm.mkdirs(GUEST_WORKDIR);
        vm.mkdirs(GUEST_OUTPUT);
        vm.mkdirs(GUEST_INPUT);
        for (ExecutionRequest.InputFile f : req.inputs()) {
          checkCancelled(step);
          String to = GUEST_INPUT + "/" + f.path();
          byte[] content = f.content();
          long bytes;
          if (content != null) {
            vm.write(to, content);
            bytes = content.length;
          } else {
            Path from = Objects.requireNonNull(f.source(), "source");
            vm.upload(from, to);
            bytes = java.nio.file.Files.size(from);
          }
          injected.add(Map.of("path", f.path(), "bytes", bytes));
        }
        emit(o -> o.filesInjected(this, injected));
        checkCancelled(step);
        step = "exec";
        ExecResult r = exec(vm);
        Anomaly killer = killedBy;
        if (killer != null) {
          throw fail(
              "exec", "stopped by anomaly rule " + killer.rule() + ": " + killer.detail(), null);
        }
        if (cancelled) {
          throw new ExecutionCancelledException(req.id(), "exec");
        }
        step = "extract";
        TaskState end = r.timedOut() ? TaskState.TIMED_OUT : TaskState.COMPLETED;
        Path dest = req.outputDirectory().orElse(outputRoot.resolve(req.id()));
        // the command's process group has ended (the guest ends it after EXIT); whatever the guest
        // still does, each copy is bounded by what is left of the budget while it copies
        ExtractedOutput out = vm.extract(GUEST_OUTPUT, dest, req.outputFiles());
        emit(o -> o.outputExtracted(this, dest, out));
        Duration total = Duration.ofNanos(System.nanoTime() - submittedNanos);
        to(end);
        emit(o -> o.completed(this, end, r.exitCode(), total));
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
            vm.name());
      } catch (ExecutionCancelledException e) {
        cancelledAt(e);
        throw e;
      } catch (ExecutionFailedException e) {
        throw e;
      } catch (IOException | RuntimeException e) {
        throw fail(step, e.getMessage(), e);
      }
    }

    private ExecResult exec(ExecutionVm vm) throws IOException {
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
      emit(o -> o.execStarted(this));
      dev.agentvm.core.VmStats before = vm.hostStats();
      long start = System.nanoTime();
      ExecutionVm.Command c = vm.start(er, counting);
      command = c;
      if (cancelled) {
        kill("cancel");
      }
      // the guest enforces the timeout; the host allows for the kill grace and a slow guest
      long hostDeadline = start + req.timeout().plus(er.killGrace()).plusSeconds(15).toNanos();
      long lastAnswer = System.nanoTime();
      long peakMem = -1;
      double peakLoad = -1;
      long peakRss = before == null ? -1 : before.rssKiB();
      while (true) {
        try {
          ExecResult r = c.result().get(sampleInterval.toMillis(), TimeUnit.MILLISECONDS);
          Duration wall = Duration.ofNanos(System.nanoTime() - start);
          dev.agentvm.core.VmStats after = vm.hostStats();
          if (after != null) {
            peakRss = Math.max(peakRss, after.rssKiB());
          }
          AnomalyDetector.Finished host =
              new AnomalyDetector.Finished(
                  source.template(), wall, cpuBetween(before, after), peakRss);
          long mem = peakMem;
          double load = peakLoad;
          emit(o -> o.execFinished(this, r, host, mem, load));
          return r;
        } catch (TimeoutException t) {
          if (System.nanoTime() > hostDeadline) {
            kill("host deadline");
            throw new IOException(
                "the guest did not end the command within its timeout of "
                    + req.timeout().toMillis()
                    + " ms and did not answer since");
          }
          // the host's own measure first: a guest that does not answer STATUS cannot skip it
          dev.agentvm.core.VmStats now = vm.hostStats();
          if (now != null) {
            peakRss = Math.max(peakRss, now.rssKiB());
          }
          StatusReport s = sample(vm);
          if (s == null) {
            long silence = System.nanoTime() - lastAnswer;
            if (silence > heartbeat.deadAfter().toNanos()) {
              throw new IOException(
                  "the guest agent stopped answering ("
                      + silence / 1_000_000
                      + " ms of silence): the VM is hung");
            }
            continue;
          }
          lastAnswer = System.nanoTime();
          long used = s.memTotalKiB() - s.memAvailableKiB();
          peakMem = Math.max(peakMem, used);
          peakLoad = Math.max(peakLoad, s.load1());
          AnomalyDetector.Sample sample =
              new AnomalyDetector.Sample(
                  used,
                  s.load1(),
                  s.processCount(),
                  outputBytes.get(),
                  Duration.ofNanos(System.nanoTime() - start));
          emit(o -> o.sampled(this, sample));
        } catch (java.util.concurrent.ExecutionException x) {
          Throwable cause = x.getCause();
          if (cause instanceof VmCrashedException crashed) {
            throw crashed;
          }
          if (cause instanceof IOException io) {
            throw io;
          }
          throw new IOException(String.valueOf(x.getMessage()), cause == null ? x : cause);
        } catch (InterruptedException x) {
          Thread.currentThread().interrupt();
          kill("interrupt");
          throw new IOException("interrupted", x);
        }
      }
    }

    /** CPU time used between two measurements of one VM; null when either is missing. */
    private static @Nullable Duration cpuBetween(
        dev.agentvm.core.@Nullable VmStats before, dev.agentvm.core.@Nullable VmStats after) {
      if (before == null || after == null) {
        return null;
      }
      Duration d = after.cpuTime().minus(before.cpuTime());
      return d.isNegative() ? null : d; // not the same QEMU any more
    }

    private @Nullable StatusReport sample(ExecutionVm vm) {
      try {
        return vm.status(heartbeat.interval().plusSeconds(1));
      } catch (IOException | RuntimeException e) {
        return null; // a busy guest may be slow to answer; silence is judged by the caller
      }
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a validated id, our rule names, details formatted from numbers, an enum")
    @Override
    public void raise(List<Anomaly> found) {
      for (Anomaly a : found) {
        LOG.warn("anomaly in {}: {}: {} ({})", req.id(), a.rule(), a.detail(), a.response());
        emit(o -> o.anomaly(this, a));
        switch (a.response()) {
          case LOG -> {}
          case KILL_EXECUTION -> {
            killedBy = a;
            kill("anomaly");
          }
          case QUARANTINE_VM -> {
            if (!vmName.isEmpty()) { // a rule at submission has no sandbox to keep
              quarantineReason = a.rule();
            }
          }
        }
      }
    }

    private void checkCancelled(String step) {
      if (cancelled) {
        throw new ExecutionCancelledException(req.id(), step);
      }
    }

    private ExecutionFailedException fail(
        String step, @Nullable String message, @Nullable Throwable cause) {
      TaskState s = state;
      if (s != null && !s.isTerminal()) {
        to(TaskState.FAILED);
      }
      boolean crashed = cause instanceof VmCrashedException;
      emit(o -> o.failed(this, step, message, crashed));
      return new ExecutionFailedException(req.id(), step, message, cause);
    }

    private void cancelledAt(ExecutionCancelledException e) {
      TaskState s = state;
      if (s != null && !s.isTerminal()) {
        to(TaskState.CANCELLED);
      }
      emit(o -> o.cancelled(this, e.step()));
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a validated id, our sandbox id and rule name; error texts are cleaned")
    private void release(ExecutionVm vm, String reason) {
      String quarantineRule = quarantineReason;
      if (quarantineRule != null) {
        try {
          vm.quarantine();
          List<ExecutionVm> evicted = new ArrayList<>();
          synchronized (quarantineLock) {
            quarantined.add(vm);
            while (quarantined.size() > maxQuarantined) {
              evicted.add(quarantined.remove(0));
            }
          }
          LOG.warn(
              "{} quarantined after {} (kept paused: AgentExecutor.quarantined())",
              vm.name(),
              quarantineRule);
          emit(o -> o.quarantined(this, quarantineRule));
          evicted.forEach(AgentExecutor.this::evictQuarantined);
          return;
        } catch (RuntimeException e) {
          LOG.warn(
              "{}: quarantining {} failed: {}",
              req.id(),
              vm.name(),
              AuditTrail.guestText(this, e.getMessage()));
        }
      }
      String why = state == TaskState.TIMED_OUT ? "timed_out" : reason;
      if (source.closesBeforeReturning()) {
        dispose(vm, why); // e.g. an attached disk: flushed and free before the result returns
        return;
      }
      // closing a sandbox takes about as long as a restore (the VM destroyed, its files removed):
      // done on the executor's threads so the result is not kept waiting; close() waits for it
      Map<String, String> mdc = org.slf4j.MDC.getCopyOfContextMap();
      Runnable dispose = LogContext.wrap(mdc == null ? Map.of() : mdc, () -> dispose(vm, why));
      try {
        threads.execute(dispose);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        dispose.run(); // the executor is closing: close it here
      }
    }

    @SuppressFBWarnings(
        value = "CRLF_INJECTION_LOGS",
        justification = "a validated id, our sandbox id; the error text is cleaned")
    private void dispose(ExecutionVm vm, String why) {
      try {
        vm.close();
        emit(o -> o.released(this, why));
      } catch (RuntimeException e) {
        LOG.warn(
            "{}: closing {} failed: {}",
            req.id(),
            vm.name(),
            AuditTrail.guestText(this, e.getMessage()));
      }
    }
  }

  /** Settings of an {@link AgentExecutor}. */
  public static final class Builder {
    private final @Nullable Sandboxes sandboxes;
    private ExecutionVm.@Nullable Source source;
    private SandboxSpec spec = SandboxSpec.defaults().withNamePrefix("agentvm-exec-");
    private int keepReady;
    private dev.agentvm.execution.sandbox.@Nullable SandboxHosts hosts;
    private int maxConcurrent = Integer.MAX_VALUE;
    private int maxQuarantined = 8;
    private String name = "default";
    private @Nullable MeterRegistry registry;
    private AuditLog audit = AuditLog.NONE;
    private AnomalyDetector anomalies = AnomalyDetector.builder().build();
    private final List<ExecutionListener> listeners = new ArrayList<>();
    private Path outputRoot = AgentVmPaths.stateRoot().resolve("outputs");
    private Duration sampleInterval = Duration.ofSeconds(1);
    private HeartbeatMonitor.Settings heartbeat = HeartbeatMonitor.Settings.DEFAULT;

    private Builder(@Nullable Sandboxes sandboxes) {
      this.sandboxes = sandboxes;
    }

    /**
     * The sandbox each execution gets (image, resources, workspace size; labels, if you want to
     * find them). Default: {@link SandboxSpec#defaults()} with the name prefix {@code
     * agentvm-exec-}. Leases, idle pauses and the command timeout of the spec do not apply: an
     * execution's sandbox lives as long as the execution, and the request's timeout is the one.
     */
    public Builder sandbox(SandboxSpec spec) {
      this.spec = Objects.requireNonNull(spec, "spec");
      return this;
    }

    /**
     * Keeps {@code count} sandboxes of the spec running and ready ({@link Sandboxes#keepReady}), so
     * an execution starts without waiting for a boot or restore. Default 0: each execution creates
     * its sandbox (a warm-image restore when one exists, else a boot).
     */
    public Builder keepReady(int count) {
      if (count < 0) {
        throw new IllegalArgumentException("count must be >= 0, was " + count);
      }
      this.keepReady = count;
      return this;
    }

    /**
     * At most {@code max} executions run at once; more wait (in {@link TaskState#PENDING}, in
     * submission order) for one to end. Default: no limit.
     */
    public Builder maxConcurrent(int max) {
      if (max < 1) {
        throw new IllegalArgumentException("max must be >= 1, was " + max);
      }
      this.maxConcurrent = max;
      return this;
    }

    /**
     * At most {@code max} sandboxes are kept paused for inspection after a {@link
     * AnomalyDetector.Response#QUARANTINE_VM}; a new one beyond it removes the oldest (with a
     * warning naming it). Default 8; 0 keeps none (the rule's anomaly is still logged and audited).
     * Each is also removed by {@link #close()}, or by the reaper when its paused retention ends.
     */
    public Builder maxQuarantined(int max) {
      if (max < 0) {
        throw new IllegalArgumentException("max must be >= 0, was " + max);
      }
      this.maxQuarantined = max;
      return this;
    }

    /** The executor's name, the value of its meters' {@code executor} tag. Default "default". */
    public Builder name(String name) {
      this.name = Objects.requireNonNull(name, "name");
      return this;
    }

    /** Reports the executor's meters into {@code registry} (also later: {@link #bindTo}). */
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

    /** How often the guest is sampled (STATUS) for anomaly checks while code runs. */
    public Builder sampleInterval(Duration interval) {
      this.sampleInterval = Objects.requireNonNull(interval);
      return this;
    }

    /**
     * When a guest counts as hung: no answer to the samples for {@link
     * HeartbeatMonitor.Settings#deadAfter()} while code runs fails the execution.
     */
    public Builder heartbeat(HeartbeatMonitor.Settings settings) {
      this.heartbeat = Objects.requireNonNull(settings);
      return this;
    }

    public AgentExecutor build() {
      if (spec.attachedDisk() != null && maxConcurrent != 1) {
        throw new IllegalArgumentException(
            "a sandbox spec with an attached disk needs maxConcurrent(1): the disk can be attached"
                + " to one sandbox at a time");
      }
      ExecutionVm.Source s = source;
      dev.agentvm.execution.sandbox.SandboxHosts set = hosts;
      if (s == null && set != null) {
        if (keepReady > 0) {
          throw new IllegalArgumentException(
              "keepReady is not available over a host set: keep sandboxes ready per host"
                  + " (Sandboxes.keepReady on SandboxHosts.on(uri))");
        }
        s =
            new SandboxExecutionVms(
                set::create,
                spec.withIdleTimeout(Duration.ZERO)
                    .withLease(Duration.ZERO, SandboxSpec.LeaseEnd.CLOSE));
      }
      if (s == null) {
        Sandboxes sb = Objects.requireNonNull(sandboxes, "sandboxes");
        SandboxSpec each =
            spec.withIdleTimeout(Duration.ZERO)
                .withLease(Duration.ZERO, SandboxSpec.LeaseEnd.CLOSE);
        if (keepReady > 0) {
          sb.keepReady(each, keepReady);
        }
        s = new SandboxExecutionVms(sb, each);
      }
      return new AgentExecutor(this, s);
    }
  }
}
