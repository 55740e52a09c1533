package dev.agentvm.execution;

import dev.agentvm.execution.internal.AgentVmMeter;
import dev.agentvm.execution.internal.Meters;
import dev.agentvm.image.Progress;
import dev.agentvm.internal.LogContext;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Threads;
import edu.umd.cs.findbugs.annotations.SuppressFBWarnings;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.DoubleSupplier;
import java.util.function.LongSupplier;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A pool of VMs ready for work. {@link #acquire} hands out an idle VM, first come first served;
 * {@link #release} takes it back and never hands it out again: a used VM has run untrusted code, so
 * it is destroyed and a fresh one is made in its place (from the clean memory image, when the
 * factory clones). The pool keeps at least {@code minSize} VMs ready or in the making and never
 * more than {@code maxSize} in all; it replaces idle VMs past their TTL or no longer healthy.
 *
 * <pre>{@code
 * try (VMPool pool = VMPool.start(factory, PoolConfig.DEFAULT.withSize(2, 8))) {
 *   PooledVm vm = pool.acquire(Duration.ofSeconds(30));
 *   try { ... } finally { pool.release(vm); }
 * }
 * }</pre>
 *
 * <p>Threads: VMs are made and destroyed on {@code parallelism} worker threads ({@code
 * agentvm-pool-worker}); one housekeeping thread ({@code agentvm-pool-housekeeping}) runs {@link
 * #cleanup(long)} when it says. One lock guards the pool's lists; the factory is never called under
 * it. {@link #close()} fails waiting acquirers, waits up to {@code closeGrace} for VMs in use, then
 * removes every VM, each guest asked to power off and given {@code closeGrace} before it is
 * destroyed. A VM given back after use is destroyed at once by default: its state is thrown away by
 * design, so there is nothing in it to flush.
 *
 * <p>When the factory fails, the pool waits before it tries again, about twice as long after each
 * failure in a row (from under a second up to a minute, with jitter), and says so once with the
 * cause, then in a summary at most every 5 minutes; a caller waiting in {@link #acquire} learns the
 * cause at once.
 *
 * <p>Metrics: the pool is a Micrometer {@link MeterBinder}: {@link #bindTo} a registry (or give one
 * to {@link #start(VmFactory, PoolConfig, MeterRegistry)}) and its meters, and those of the {@link
 * AgentExecutor}s on it, appear there tagged {@code pool=}{@link PoolConfig#poolName()}. Without a
 * registry nothing is recorded. Closing the pool removes its meters. The list is in
 * docs/observability.md. Its threads log with {@code pool} (and {@code vm} while working on one) in
 * the MDC.
 */
public final class VMPool implements AutoCloseable, MeterBinder {
  private static final Logger LOG = LoggerFactory.getLogger(VMPool.class);
  private static final SecureRandom JITTER = new SecureRandom();

  private final VmFactory factory;
  private final PoolConfig config;
  private final LongSupplier clock;
  private final ExecutorService workers;
  private final @Nullable ScheduledExecutorService housekeeping; // null in tests driving cleanup
  private final String name;
  private final Meters meters;
  private final Object lock = new Object();
  private final Deque<PooledVm> idle = new ArrayDeque<>(); // guarded by lock, oldest first
  private final Set<PooledVm> inUse = new HashSet<>(); // guarded by lock
  private final Deque<CompletableFuture<PooledVm>> waiters = new ArrayDeque<>(); // guarded by lock
  private int starting; // guarded by lock: creations in flight
  private int destroying; // guarded by lock
  private boolean closed; // guarded by lock
  private long retryAfterNanos; // guarded by lock: no new creations before (after a failure)
  private final RefillBackoff backoff; // guarded by lock
  private final AtomicInteger sequence = new AtomicInteger();
  private volatile dev.agentvm.internal.ShutdownHooks.Registration atExit = () -> {};
  private final String poolId = Long.toString(System.nanoTime() % 1_000_000, 36);

  private VMPool(
      VmFactory factory,
      PoolConfig config,
      @Nullable MeterRegistry registry,
      LongSupplier clock,
      DoubleSupplier jitter,
      boolean housekeep) {
    this.factory = Objects.requireNonNull(factory, "factory");
    this.config = Objects.requireNonNull(config, "config");
    this.name = config.poolName();
    this.clock = clock;
    this.retryAfterNanos = clock.getAsLong();
    this.backoff = new RefillBackoff(jitter);
    this.meters = new Meters(Tags.of("pool", name), "pool named '" + name + "'");
    for (State s : State.values()) {
      meters.gauge(AgentVmMeter.POOL_VMS, Tags.of("state", s.tag), this, p -> p.count(s));
    }
    meters.gauge(AgentVmMeter.POOL_WAITERS, Tags.empty(), this, VMPool::waitingCount);
    meters.gauge(
        AgentVmMeter.POOL_REFILL_FAILURES, Tags.empty(), this, VMPool::consecutiveFailures);
    if (registry != null) {
      meters.bindTo(registry); // before any thread exists: a name taken there fails the start
    }
    this.workers =
        Executors.newFixedThreadPool(
            config.parallelism(), Threads.numberedDaemons("agentvm-pool-worker"));
    this.housekeeping =
        housekeep
            ? Executors.newSingleThreadScheduledExecutor(
                Threads.namedDaemons("agentvm-pool-housekeeping"))
            : null;
  }

  private enum State {
    IDLE("idle"),
    IN_USE("in_use"),
    STARTING("starting"),
    DESTROYING("destroying");

    final String tag;

    State(String tag) {
      this.tag = tag;
    }
  }

  private int count(State s) {
    synchronized (lock) {
      return switch (s) {
        case IDLE -> idle.size();
        case IN_USE -> inUse.size();
        case STARTING -> starting;
        case DESTROYING -> destroying;
      };
    }
  }

  private int consecutiveFailures() {
    synchronized (lock) {
      return backoff.failures();
    }
  }

  /**
   * Starts a pool and begins making its first {@code minSize} VMs. It records metrics once a
   * registry is bound ({@link #bindTo}).
   */
  public static VMPool start(VmFactory factory, PoolConfig config) {
    return startWith(factory, config, null);
  }

  /**
   * Starts a pool that reports to {@code registry} (as if {@link #bindTo} were called before it
   * made anything).
   *
   * @throws IllegalStateException if a live pool of the same {@linkplain PoolConfig#poolName()
   *     name} already reports into {@code registry}
   */
  public static VMPool start(VmFactory factory, PoolConfig config, MeterRegistry registry) {
    return startWith(factory, config, Objects.requireNonNull(registry, "registry"));
  }

  private static VMPool startWith(
      VmFactory factory, PoolConfig config, @Nullable MeterRegistry registry) {
    VMPool p = new VMPool(factory, config, registry, System::nanoTime, JITTER::nextDouble, true);
    p.atExit = dev.agentvm.internal.ShutdownHooks.register("VM pool " + p.name, p);
    p.fill();
    p.scheduleHousekeeping(config.healthCheckInterval().toNanos());
    return p;
  }

  /**
   * A pool driven by a given clock and jitter (values in [0, 1) for the back-off), without a
   * housekeeping thread: call {@link #cleanup}; a failed creation is retried by the next {@code
   * cleanup} after its back-off.
   */
  static VMPool startManual(
      VmFactory factory,
      PoolConfig config,
      @Nullable MeterRegistry registry,
      LongSupplier clock,
      DoubleSupplier jitter) {
    VMPool p = new VMPool(factory, config, registry, clock, jitter, false);
    p.fill();
    return p;
  }

  static VMPool startManual(
      VmFactory factory, PoolConfig config, MeterRegistry registry, LongSupplier clock) {
    return startManual(factory, config, registry, clock, () -> 0.5);
  }

  public PoolConfig config() {
    return config;
  }

  /** The pool's name ({@link PoolConfig#poolName()}): the {@code pool} tag of its meters. */
  public String name() {
    return name;
  }

  /**
   * Reports the pool's meters, and those of the executors on it, into {@code registry} as well
   * (Micrometer's {@link MeterBinder}: Spring Boot binds beans of this type to its registry by
   * itself). Binding a registry twice does nothing; nor does binding a closed pool.
   *
   * @throws IllegalStateException if another live pool of the same name reports into {@code
   *     registry} (its gauges would win and this pool's would be missing): name them apart with
   *     {@link PoolConfig#withName}
   */
  @Override
  public void bindTo(MeterRegistry registry) {
    meters.bindTo(registry);
  }

  /** Where the pool and its executors record. */
  Meters meters() {
    return meters;
  }

  /** The MDC of a task of this pool's, about VM {@code vm}. */
  private Map<String, String> logContext(String vm) {
    return Map.of(LogContext.POOL, name, LogContext.VM, vm);
  }

  public int idleCount() {
    return count(State.IDLE);
  }

  public int inUseCount() {
    return count(State.IN_USE);
  }

  public int startingCount() {
    return count(State.STARTING);
  }

  /** Callers waiting in {@link #acquire} for a VM. */
  public int waitingCount() {
    synchronized (lock) {
      return waiters.size();
    }
  }

  /**
   * Takes a ready VM, waiting up to {@code timeout}; waiters are served in arrival order.
   *
   * @throws PoolExhaustedException if none became free in time, naming the pool's state
   * @throws IllegalStateException if the pool is closed
   * @throws InterruptedException if interrupted while waiting
   */
  public PooledVm acquire(Duration timeout) throws InterruptedException {
    long t0 = System.nanoTime();
    CompletableFuture<PooledVm> ticket = new CompletableFuture<>();
    synchronized (lock) {
      if (closed) {
        throw new IllegalStateException("pool is closed");
      }
      PooledVm vm = waiters.isEmpty() ? idle.pollFirst() : null;
      if (vm != null) {
        inUse.add(vm);
        ticket.complete(vm);
      } else {
        waiters.addLast(ticket);
      }
    }
    fill();
    try {
      PooledVm vm = ticket.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
      meters.record(AgentVmMeter.POOL_ACQUIRE_WAIT, Tags.empty(), System.nanoTime() - t0);
      return vm;
    } catch (TimeoutException e) {
      synchronized (lock) {
        if (!waiters.removeIf(w -> w == ticket)
            && ticket.isDone()
            && !ticket.isCompletedExceptionally()) {
          return ticket.join(); // handed over just as we gave up: keep it
        }
        throw new PoolExhaustedException(
            "no VM free within "
                + timeout.toMillis()
                + " ms (idle "
                + idle.size()
                + ", in use "
                + inUse.size()
                + ", starting "
                + starting
                + ", max "
                + config.maxSize()
                + ", waiting "
                + waiters.size()
                + ")");
      }
    } catch (java.util.concurrent.ExecutionException e) {
      Throwable c = e.getCause();
      throw c instanceof RuntimeException r ? r : new PoolExhaustedException(String.valueOf(c));
    } catch (InterruptedException e) {
      synchronized (lock) {
        if (!waiters.removeIf(w -> w == ticket)
            && ticket.isDone()
            && !ticket.isCompletedExceptionally()) {
          releaseLater(ticket.join());
        }
      }
      throw e;
    }
  }

  /**
   * Runs a task on a worker, or here if the workers are shut down: a VM handed over for removal
   * while the pool closes must still be removed.
   */
  private void onWorker(Runnable task) {
    try {
      workers.execute(task);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      task.run();
    }
  }

  private void releaseLater(PooledVm vm) {
    onWorker(LogContext.wrap(logContext(vm.name()), () -> release(vm)));
  }

  /**
   * Gives a VM back. It is never handed out again: it is destroyed and a fresh one is made.
   *
   * @throws IllegalArgumentException if the VM is not in use from this pool
   */
  public void release(PooledVm vm) {
    discard(vm, "used");
  }

  /**
   * Gives a VM back that must not be reused for a reason worth counting ({@code timed_out}, {@code
   * crashed}, {@code anomaly}); it is destroyed and replaced.
   */
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "the VM name is ours; the reason is the caller's (the executor's constants)")
  public void discard(PooledVm vm, String reason) {
    synchronized (lock) {
      if (!inUse.remove(vm)) {
        throw new IllegalArgumentException(vm.name() + " is not in use from this pool");
      }
      destroying++;
    }
    meters.increment(AgentVmMeter.POOL_DISCARDED, Tags.of("reason", reason));
    LOG.debug("pool {}: {} given back ({}): destroying it", name, vm.name(), reason);
    onWorker(LogContext.wrap(logContext(vm.name()), () -> destroy(vm)));
    fill();
  }

  /**
   * Takes an in-use VM out of the pool for good (e.g. to keep it for inspection); the caller owns
   * it and must remove it. The pool makes a replacement.
   */
  public void detach(PooledVm vm) {
    synchronized (lock) {
      if (!inUse.remove(vm)) {
        throw new IllegalArgumentException(vm.name() + " is not in use from this pool");
      }
    }
    meters.increment(AgentVmMeter.POOL_DISCARDED, Tags.of("reason", "detached"));
    fill();
  }

  private void destroy(PooledVm vm) {
    removing(vm, () -> factory.destroy(vm));
    fill();
  }

  /** At close: graceful first, within the close grace. */
  private void retire(PooledVm vm) {
    removing(vm, () -> factory.retire(vm, config.closeGrace()));
  }

  /** Runs a removal; a failure is logged (what is left, the reaper takes); the count goes down. */
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "the VM name is ours; the error text is cleaned with LogText")
  private void removing(PooledVm vm, Runnable removal) {
    try {
      removal.run();
    } catch (RuntimeException e) {
      LOG.warn(
          "pool {}: could not remove VM {}: {}",
          name,
          vm.name(),
          LogText.clean(String.valueOf(e.getMessage())));
    } finally {
      synchronized (lock) {
        destroying--;
        lock.notifyAll();
      }
    }
  }

  private volatile Progress progress = Progress.toLog();

  /** Until the pool first holds its minimum of idle VMs; guarded by {@code lock}. */
  private boolean warmedUp;

  /**
   * Who hears the pool's warm-up (default {@link Progress#toLog()}): a step per VM made until the
   * pool first holds its minimum size idle. Later refills are not reported.
   */
  public VMPool progress(Progress listener) {
    this.progress = java.util.Objects.requireNonNull(listener, "listener");
    return this;
  }

  /** The warm-up step for a VM just made idle; under {@code lock}. */
  private Progress.Step warmUpStep(String vm) {
    int min = config.minSize();
    int have = Math.min(idle.size(), min);
    if (have >= min) {
      warmedUp = true;
    }
    return new Progress.Step("pool " + name, have, min, vm + " ready");
  }

  /** Starts as many creations as needed: to min size, and for waiters, within max size. */
  private void fill() {
    int toStart;
    synchronized (lock) {
      if (closed || clock.getAsLong() - retryAfterNanos < 0) {
        return;
      }
      // VMs still being destroyed hold memory too: they count against the maximum
      int total = idle.size() + inUse.size() + starting + destroying;
      int forMin = config.minSize() - (idle.size() + starting);
      int forWaiters = waiters.size() - (idle.size() + starting);
      toStart = Math.min(Math.max(forMin, forWaiters), config.maxSize() - total);
      starting += Math.max(0, toStart);
    }
    for (int i = 0; i < toStart; i++) {
      String vm = config.namePrefix() + poolId + "-" + sequence.incrementAndGet();
      onWorker(LogContext.wrap(logContext(vm), () -> create(vm)));
    }
  }

  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "the pool and VM names are ours, the rest are numbers")
  private void create(String vm) {
    long t0 = System.nanoTime();
    PooledVm made;
    try {
      made = factory.create(vm, clock.getAsLong());
    } catch (Exception e) {
      meters.record(
          AgentVmMeter.POOL_VM_CREATE,
          Tags.of("kind", factory.kind(), "outcome", "failure"),
          System.nanoTime() - t0);
      createFailed(vm, e);
      return;
    }
    long took = System.nanoTime() - t0;
    meters.record(
        AgentVmMeter.POOL_VM_CREATE, Tags.of("kind", factory.kind(), "outcome", "success"), took);
    int ended;
    long failingNanos;
    synchronized (lock) {
      failingNanos = clock.getAsLong() - backoff.firstFailureNanos();
      ended = backoff.succeeded();
    }
    if (ended > 0) {
      LOG.info(
          "pool {}: making VMs works again, after {} failed attempts over {} s",
          name,
          ended,
          TimeUnit.NANOSECONDS.toSeconds(failingNanos));
    }
    LOG.debug("pool {}: {} ready ({} ms)", name, vm, took / 1_000_000);
    offer(made);
  }

  /**
   * A creation failed: back off before the next one (retried by the housekeeping thread when the
   * wait is over), fail a waiter nobody else will serve, and say so once, then in summaries.
   */
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification =
          "the pool and VM names are ours; the error text (maybe with a console log) is cleaned")
  private void createFailed(String vm, Exception e) {
    CompletableFuture<PooledVm> failed = null;
    RefillBackoff.Verdict v;
    synchronized (lock) {
      starting--;
      long now = clock.getAsLong();
      v = backoff.failed(now);
      retryAfterNanos = now + v.delayNanos();
      // a waiter that nobody else will serve learns why instead of timing out
      if (waiters.size() > idle.size() + starting) {
        failed = waiters.pollFirst();
      }
      lock.notifyAll();
    }
    long retryMillis = TimeUnit.NANOSECONDS.toMillis(v.delayNanos());
    switch (v.report()) {
      case FIRST ->
          LOG.warn(
              "pool {}: could not make VM {}: {}; trying again in {} ms, waiting up to twice as"
                  + " long after each further failure (up to {} s; summaries every {} min,"
                  + " each failure at DEBUG)",
              name,
              vm,
              LogText.clean(e),
              retryMillis,
              RefillBackoff.MAX.toSeconds(),
              RefillBackoff.SUMMARY_EVERY.toMinutes());
      case SUMMARY ->
          LOG.warn(
              "pool {}: still cannot make VMs: {} more failed attempts ({} in a row over {} s);"
                  + " the last: {}; next attempt in {} ms",
              name,
              v.sinceReport(),
              v.failures(),
              TimeUnit.NANOSECONDS.toSeconds(v.failingNanos()),
              LogText.clean(e),
              retryMillis);
      case QUIET ->
          LOG.debug(
              "pool {}: could not make VM {} ({} in a row): {}; next attempt in {} ms",
              name,
              vm,
              v.failures(),
              LogText.clean(e),
              retryMillis);
    }
    LOG.debug("pool {}: making {} failed", name, vm, e);
    if (failed != null) {
      failed.completeExceptionally(
          new PoolExhaustedException("making a VM failed: " + e.getMessage(), e));
    }
    scheduleRefill(v.delayNanos());
  }

  /** A fresh VM: to the first waiter, else idle. */
  private void offer(PooledVm vm) {
    boolean destroyNow = false;
    Progress.@Nullable Step warmUpStep = null;
    synchronized (lock) {
      starting--;
      if (closed) {
        destroying++;
        destroyNow = true;
      } else {
        while (!waiters.isEmpty()) {
          CompletableFuture<PooledVm> w = waiters.pollFirst();
          inUse.add(vm);
          if (w.complete(vm)) {
            return;
          }
          inUse.remove(vm);
        }
        idle.addLast(vm);
        warmUpStep = warmedUp ? null : warmUpStep(vm.name());
      }
    }
    if (warmUpStep != null) {
      Progress.report(progress, warmUpStep);
    }
    if (destroyNow) {
      destroy(vm);
    }
  }

  // the task logs its own failures and close() stops it: nobody waits on its future
  @SuppressWarnings("FutureReturnValueIgnored")
  private void scheduleRefill(long delayNanos) {
    if (housekeeping == null) {
      return; // a manual pool refills on its next cleanup
    }
    try {
      housekeeping.schedule(
          LogContext.wrap(
              Map.of(LogContext.POOL, name),
              () -> {
                try {
                  fill();
                } catch (RuntimeException e) {
                  LOG.warn("pool {}: refill failed", name, e);
                }
              }),
          delayNanos,
          TimeUnit.NANOSECONDS);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closing
    }
  }

  /**
   * Housekeeping: replaces idle VMs past their TTL or no longer healthy, refills to the minimum.
   *
   * @param nowNanos the current time of the pool's clock
   * @return nanoseconds until it should run again
   */
  @SuppressFBWarnings(value = "CRLF_INJECTION_LOGS", justification = "VM names are ours")
  public long cleanup(long nowNanos) {
    List<PooledVm> candidates;
    synchronized (lock) {
      if (closed) {
        return Long.MAX_VALUE;
      }
      candidates = new ArrayList<>(idle);
    }
    List<PooledVm> stale = new ArrayList<>();
    long next = config.healthCheckInterval().toNanos();
    for (PooledVm vm : candidates) {
      long age = nowNanos - vm.createdAtNanos();
      if (age >= config.ttl().toNanos()) {
        stale.add(vm);
      } else if (!factory.isHealthy(vm)) {
        LOG.warn("pool {}: idle VM {} is not healthy: replacing it", name, vm.name());
        stale.add(vm);
      } else {
        next = Math.min(next, config.ttl().toNanos() - age);
      }
    }
    synchronized (lock) {
      for (Iterator<PooledVm> it = stale.iterator(); it.hasNext(); ) {
        PooledVm vm = it.next();
        if (idle.remove(vm)) {
          destroying++;
        } else {
          it.remove(); // taken meanwhile
        }
      }
    }
    for (PooledVm vm : stale) {
      LOG.debug("pool {}: replacing idle {}", name, vm.name());
      onWorker(LogContext.wrap(logContext(vm.name()), () -> destroy(vm)));
    }
    fill();
    return Math.max(1, next);
  }

  // the task logs its own failures and close() stops it: nobody waits on its future
  @SuppressWarnings("FutureReturnValueIgnored")
  private void scheduleHousekeeping(long delayNanos) {
    if (housekeeping == null) {
      return;
    }
    try {
      housekeeping.schedule(
          LogContext.wrap(
              Map.of(LogContext.POOL, name),
              () -> {
                long next = config.healthCheckInterval().toNanos();
                try {
                  next = cleanup(clock.getAsLong());
                } catch (RuntimeException e) {
                  LOG.warn("pool {}: housekeeping failed", name, e);
                }
                if (next != Long.MAX_VALUE) {
                  scheduleHousekeeping(next);
                }
              }),
          delayNanos,
          TimeUnit.NANOSECONDS);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closing
    }
  }

  /**
   * Fails waiting acquirers, waits up to {@code closeGrace} for VMs in use to come back, then
   * removes every VM of the pool, gracefully first (within {@code closeGrace}). Idempotent.
   */
  @Override
  public void close() {
    List<CompletableFuture<PooledVm>> failed;
    synchronized (lock) {
      if (closed) {
        return;
      }
      closed = true;
      failed = new ArrayList<>(waiters);
      waiters.clear();
    }
    atExit.close();
    failed.forEach(w -> w.completeExceptionally(new IllegalStateException("pool closed")));
    if (housekeeping != null) {
      housekeeping.shutdownNow();
    }
    // at JVM exit nobody will give VMs back: do not wait for them
    long end =
        System.nanoTime()
            + (dev.agentvm.internal.ShutdownHooks.isShuttingDown()
                ? 0
                : config.closeGrace().toNanos());
    List<PooledVm> all = new ArrayList<>();
    synchronized (lock) {
      while ((!inUse.isEmpty() || starting > 0) && System.nanoTime() < end) {
        try {
          lock.wait(Math.max(1, Math.min(100, (end - System.nanoTime()) / 1_000_000)));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      all.addAll(idle);
      all.addAll(inUse);
      idle.clear();
      inUse.clear();
      destroying += all.size();
    }
    if (!all.isEmpty()) {
      LOG.info("closing pool {}: removing {} VMs", name, all.size());
    }
    for (PooledVm vm : all) {
      onWorker(LogContext.wrap(logContext(vm.name()), () -> retire(vm)));
    }
    workers.shutdown();
    long budgetNanos = TimeUnit.SECONDS.toNanos(Math.max(60, config.closeGrace().toSeconds() * 2));
    long until = System.nanoTime() + budgetNanos;
    try {
      if (!workers.awaitTermination(budgetNanos, TimeUnit.NANOSECONDS)) {
        LOG.warn("pool {}: workers did not finish: some VMs may be left for the reaper", name);
      }
      // a VM given back while the pool closed is destroyed on the caller's thread once the workers
      // refuse work: wait for that removal too, so that close() returns with every VM gone
      synchronized (lock) {
        while (destroying > 0 && System.nanoTime() < until) {
          lock.wait(Math.max(1, Math.min(100, (until - System.nanoTime()) / 1_000_000)));
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      meters.close();
    }
  }

  /** For tests: blocks until no creation or destruction is in flight. */
  void awaitQuiet(Duration timeout) throws InterruptedException {
    long end = System.nanoTime() + timeout.toNanos();
    synchronized (lock) {
      while ((starting > 0 || destroying > 0) && System.nanoTime() < end) {
        lock.wait(20);
      }
    }
  }
}
