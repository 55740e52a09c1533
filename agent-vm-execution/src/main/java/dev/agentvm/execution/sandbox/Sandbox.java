package dev.agentvm.execution.sandbox;

import dev.agentvm.core.ConnectionException;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import dev.agentvm.core.VmCrashedException;
import dev.agentvm.core.agent.AgentChannelClosedException;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.execution.internal.AgentVmMeter;
import dev.agentvm.internal.LogContext;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressProxy;
import dev.agentvm.network.egress.EgressRecord;
import dev.agentvm.protocol.ProcList;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.storage.GuestIdentity;
import io.micrometer.core.instrument.Tags;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One agent session in one VM, for as long as the agent needs it: many commands, files, pause to
 * disk and resume (also in another process), checkpoints and rollback, forks. Get one from {@link
 * Sandboxes}.
 *
 * <p>What persists: everything in the guest's memory and its disk, across pause/resume and rollback
 * to a checkpoint (processes keep running, files stay). Each command starts a new process: the
 * working directory and environment of one command do not carry over to the next (give {@code
 * withCwd}/{@code withEnv}, or write them into a file the next command sources). {@code /workspace}
 * is the sandbox's own ext4 file system of {@link SandboxSpec#workspaceBytes()}: a guest cannot
 * store more there. Everything else (e.g. {@code /tmp}) lives in guest memory.
 *
 * <p>Calls are thread-safe. Commands and file calls run concurrently; pause, resume, checkpoint,
 * rollback, fork and close wait for the calls in flight (each has a deadline) and hold new ones
 * until they are done. A call on a paused sandbox resumes it first.
 *
 * <p>Calls run with the sandbox's id in the MDC under {@code sandbox}. Pause, resume, checkpoint,
 * rollback and fork are timed ({@code agentvm.sandbox.*}, see {@link Sandboxes#bindTo}).
 */
// "try": the MDC scopes are try-with-resources blocks whose variable is unused by design
@SuppressWarnings("try")
public final class Sandbox implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Sandbox.class);
  private static final Pattern CHECKPOINT_NAME =
      Pattern.compile("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}");
  private static final String PAUSED_FILE = "paused.save";

  /** How long a sandbox with an attached disk may take to power off (sync) before it is cut. */
  static final Duration ATTACHED_DISK_GRACE = Duration.ofSeconds(10);

  private final Sandboxes home;
  private final Path dir;
  private final SandboxRecord rec;
  private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  private final SandboxFiles files = new SandboxFiles(this);
  private @Nullable VM vm;
  private @Nullable AgentClient agent;
  private volatile @Nullable EgressProxy egress;
  private volatile boolean closed;
  private final java.util.concurrent.atomic.AtomicInteger inFlight =
      new java.util.concurrent.atomic.AtomicInteger();
  private volatile long lastUsedNanos = System.nanoTime();
  private volatile @Nullable Instant leaseEnd;
  private final java.util.Map<Integer, SandboxProcess> processes =
      new java.util.concurrent.ConcurrentHashMap<>();
  private final java.util.Set<SandboxWatch> watches =
      java.util.concurrent.ConcurrentHashMap.newKeySet();

  Sandbox(
      Sandboxes home, Path dir, SandboxRecord rec, @Nullable VM vm, @Nullable AgentClient agent) {
    this.home = home;
    this.dir = dir;
    this.rec = rec;
    this.vm = vm;
    this.agent = agent;
    pinImages(rec, dir);
    if (vm != null) {
      startLease();
    }
    EgressPolicy policy = rec.egress;
    if (policy != null) {
      // made now, attached when the agent answers: a paused sandbox's commands need its variables
      this.egress = home.egressProxy(rec.id, policy);
    }
    if (agent != null) {
      try {
        attachEgress(agent);
      } catch (RuntimeException e) {
        EgressProxy made = egress;
        if (made != null) {
          made.close(); // the caller closes the VM; nothing of the sandbox lives on
        }
        throw e;
      }
    }
  }

  /**
   * Starts (or restarts, after the agent reconnected) the egress proxy when the sandbox has a
   * policy. A failure stops the sandbox's use: commands would find no proxy.
   */
  private void attachEgress(AgentClient a) {
    EgressPolicy policy = rec.egress;
    EgressProxy p = egress;
    if (policy == null) {
      return;
    }
    if (p == null) {
      p = home.egressProxy(rec.id, policy);
      egress = p;
    }
    try {
      p.attach(a, rec.agentDeadline);
    } catch (IOException | RuntimeException e) {
      throw new SandboxException(
          "sandbox " + rec.id + ": the guest did not open its egress proxy: " + e.getMessage(), e);
    }
  }

  /**
   * Changes the egress policy of this sandbox: connections already open keep going, new ones follow
   * the new policy. A sandbox created without egress gets it from now on (its proxy starts with the
   * next call). Kept across pause and resume, also in another process.
   */
  public void egressPolicy(EgressPolicy policy) throws IOException {
    java.util.Objects.requireNonNull(policy, "policy");
    lock.writeLock().lock();
    try {
      requireOpen();
      EgressPolicy before = rec.egress;
      EgressProxy p = egress;
      AgentClient a = agent;
      rec.egress = policy;
      try {
        if (p != null) {
          p.policy(policy); // first: a guest that does not take the CA keeps the old policy
        } else if (a != null) {
          attachEgress(a);
        } else {
          egress = home.egressProxy(rec.id, policy); // attached when the sandbox resumes
        }
      } catch (IOException | RuntimeException e) {
        rec.egress = before;
        throw e;
      }
      rec.save(dir);
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** The egress policy, if the sandbox has one. */
  public java.util.Optional<EgressPolicy> egressPolicy() {
    return java.util.Optional.ofNullable(rec.egress);
  }

  /**
   * The sandbox's most recent egress connections in this process (at most {@link
   * EgressProxy#LOG_SIZE}), oldest first: what was asked, what was decided, bytes each way.
   */
  public List<EgressRecord> egressLog() {
    EgressProxy p = egress;
    return p == null ? List.of() : p.log();
  }

  /** A request as the guest gets it: the default timeout, the egress proxy's environment. */
  private ExecRequest prepared(ExecRequest request) {
    ExecRequest r = request.timeout().isZero() ? request.withTimeout(rec.commandTimeout) : request;
    EgressProxy p = egress;
    if (p == null) {
      return r;
    }
    java.util.Map<String, String> env = new java.util.LinkedHashMap<>(p.environment());
    env.putAll(r.env()); // the caller's own variables win
    return r.withEnv(env);
  }

  /**
   * Keeps the images a sandbox boots or resumes with in the cache while {@code holder} exists: a
   * paused sandbox may be resumed long after newer images were built.
   */
  static void unpinImages(SandboxRecord rec, Path holder) {
    dev.agentvm.image.ImagePins.unpin(Path.of(rec.kernel), holder);
    String packages = rec.packageDisk;
    if (packages != null) {
      dev.agentvm.image.ImagePins.unpin(Path.of(packages), holder);
    }
  }

  static void pinImages(SandboxRecord rec, Path holder) {
    dev.agentvm.image.ImagePins.pin(Path.of(rec.kernel), holder);
    String packages = rec.packageDisk;
    if (packages != null) {
      dev.agentvm.image.ImagePins.pin(Path.of(packages), holder);
    }
  }

  /**
   * Takes on {@code spec}'s per-sandbox settings (labels, timeouts, lease, retention): a ready
   * sandbox being handed out. Its VM, image and resources already match.
   */
  void adopt(SandboxSpec spec) throws IOException {
    lock.writeLock().lock();
    try {
      rec.ready = false;
      rec.applySettings(spec);
      rec.save(dir);
      startLease();
      // a ready sandbox has no egress of its own: the spec it is handed out for decides
      EgressProxy p = egress;
      EgressPolicy policy = rec.egress;
      if (p != null) {
        if (policy == null) {
          egress = null;
          p.close();
        } else {
          p.policy(policy);
        }
      }
      AgentClient a = agent;
      if (a != null) {
        attachEgress(a);
      }
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void startLease() {
    lastUsedNanos = System.nanoTime();
    leaseEnd = rec.lease.isZero() ? null : Instant.now().plus(rec.lease);
  }

  /**
   * Sets the lease to end {@code d} from now (whether or not the sandbox had one). At its end the
   * sandbox is paused or closed, as its spec says; a paused one is resumed by its next call with a
   * new lease.
   */
  public void extendLease(Duration d) {
    if (d.isNegative() || d.isZero()) {
      throw new IllegalArgumentException("a lease must be positive, was " + d);
    }
    leaseEnd = Instant.now().plus(d);
  }

  /** When the lease of the running sandbox ends; empty without a lease or while not running. */
  public java.util.Optional<Instant> leaseEnd() {
    return state() == SandboxState.RUNNING
        ? java.util.Optional.ofNullable(leaseEnd)
        : java.util.Optional.empty();
  }

  /** True when no call is in flight and none came for {@code d}. */
  boolean idleFor(Duration d) {
    return inFlight.get() == 0 && System.nanoTime() - lastUsedNanos >= d.toNanos();
  }

  long lastUsedNanos() {
    return lastUsedNanos;
  }

  int memoryMiB() {
    return rec.memoryMiB;
  }

  Duration idleTimeout() {
    return rec.idleTimeout;
  }

  SandboxSpec.LeaseEnd onLeaseEnd() {
    return rec.onLeaseEnd;
  }

  /**
   * Pauses the sandbox if it runs and no call is in flight or waiting; returns whether it did.
   * Never waits for a lock another thread holds (the memory budget and the idle timer call it for
   * sandboxes other than the one they work for).
   */
  boolean pauseIfIdle(String why) {
    if (!lock.writeLock().tryLock()) {
      return false;
    }
    try {
      if (closed
          || rec.state != SandboxState.RUNNING
          || inFlight.get() != 0
          || rec.hasAttachedDisk()) {
        return false;
      }
      LOG.info("pausing sandbox {}: {}", rec.id, why);
      pause();
      return true;
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** The sandbox's id in the MDC until the scope closes (the outer value back after). */
  private LogContext.Scope logContext() {
    return LogContext.put(LogContext.SANDBOX, rec.id);
  }

  /** Runs a phase and times it in {@code meter}, tagged with its outcome. */
  private void timed(AgentVmMeter meter, Runnable phase) {
    timedCall(
        meter,
        () -> {
          phase.run();
          return Boolean.TRUE;
        });
  }

  private <T> T timedCall(AgentVmMeter meter, Supplier<T> phase) {
    long t0 = System.nanoTime();
    String outcome = "failure";
    try {
      T result = phase.get();
      outcome = "success";
      return result;
    } finally {
      home.meters().record(meter, Tags.of("outcome", outcome), System.nanoTime() - t0);
    }
  }

  /** The sandbox's id; also its VM's name and the guest's hostname. */
  public String id() {
    return rec.id;
  }

  /** Its state. */
  public SandboxState state() {
    lock.readLock().lock();
    try {
      return closed ? SandboxState.CLOSED : rec.state;
    } finally {
      lock.readLock().unlock();
    }
  }

  /** What the host records of it. */
  public SandboxInfo info() {
    lock.readLock().lock();
    try {
      return rec.info();
    } finally {
      lock.readLock().unlock();
    }
  }

  /** The default timeout of commands that set none. */
  public Duration commandTimeout() {
    return rec.commandTimeout;
  }

  /**
   * Runs a command to completion. A request without a timeout gets the sandbox's {@link
   * #commandTimeout()}.
   *
   * @throws IOException if the agent failed or the command could not start (an {@code
   *     AgentErrorException} names the reason: command not found, no such directory, ...)
   */
  public ExecResult exec(ExecRequest request) throws IOException {
    ExecRequest r = prepared(request);
    return withAgent(a -> a.exec(r));
  }

  /**
   * Starts a command that runs to completion, its output streamed to {@code listener} while it runs
   * (on the agent's reader thread: keep the listener quick). A request without a timeout gets the
   * sandbox's {@link #commandTimeout()}. The returned handle completes with the result (with a
   * {@link VmCrashedException} if QEMU died) and can kill the command. Pause, checkpoint, fork and
   * close wait for {@link #exec} calls, not for these: a command started here fails with an {@code
   * AgentException} if the sandbox stops under it.
   */
  public SandboxCommand execAsync(ExecRequest request, OutputListener listener) throws IOException {
    ExecRequest r = prepared(request);
    AgentClient.Execution e = withAgent(a -> a.execAsync(r, listener));
    java.util.concurrent.CompletableFuture<ExecResult> result =
        e.result()
            .exceptionallyComposeAsync(
                t -> {
                  Throwable c =
                      t instanceof java.util.concurrent.CompletionException && t.getCause() != null
                          ? t.getCause()
                          : t;
                  RuntimeException crash =
                      c instanceof AgentChannelClosedException closed ? crashOf(closed) : null;
                  return java.util.concurrent.CompletableFuture.failedFuture(
                      crash != null ? crash : c);
                });
    return new SandboxCommand(e, result, rec.agentDeadline);
  }

  /**
   * What the guest reports of itself: memory, load, processes (see {@link StatusReport}); the
   * guest's own numbers, so a hostile guest may lie.
   *
   * @throws dev.agentvm.core.agent.AgentTimeoutException if no answer came within {@code deadline}
   */
  public StatusReport status(Duration deadline) throws IOException {
    return withAgent(a -> a.status(deadline));
  }

  /**
   * What the sandbox's running VM costs the host, as the hypervisor measures it (CPU time since its
   * VM started, QEMU's resident memory): numbers the guest cannot change. A paused sandbox is not
   * resumed for it.
   *
   * @throws SandboxException if it is paused or closed (a paused sandbox costs no CPU and no RAM)
   */
  public dev.agentvm.core.VmStats stats() {
    lock.readLock().lock();
    try {
      requireOpen();
      VM v = vm;
      if (rec.state != SandboxState.RUNNING || v == null) {
        throw new SandboxException("sandbox " + rec.id + " is " + rec.state + ": no VM runs");
      }
      return v.stats();
    } finally {
      lock.readLock().unlock();
    }
  }

  /** Runs {@code argv} (no shell) with the default timeout. */
  public ExecResult exec(String... argv) throws IOException {
    return exec(ExecRequest.command(argv));
  }

  /** Runs a {@code sh} script with the default timeout. */
  public ExecResult run(String shellScript) throws IOException {
    return exec(ExecRequest.script(shellScript, "sh"));
  }

  /**
   * Starts a background process: it runs until it ends or is killed, across pause/resume and
   * checkpoints, with its output streamed to {@code listener} (on the agent's reader thread: keep
   * the listener quick). The request's timeout and output limit do not apply.
   */
  public SandboxProcess start(ExecRequest request, OutputListener listener) throws IOException {
    return withAgent(
        a -> {
          SandboxProcess p = new SandboxProcess(this, request.argv().get(0), listener);
          AgentClient.Background bg = a.spawn(prepared(request), p.sink(), rec.commandTimeout);
          p.handle(bg.handle());
          p.follow(bg.exit());
          processes.put(p.handle(), p);
          return p;
        });
  }

  /**
   * Follows a background process this object did not start (one a fork inherited, or one started
   * before another process paused the sandbox): its kept output is replayed to {@code listener}.
   */
  public SandboxProcess attach(int handle, OutputListener listener) throws IOException {
    return withAgent(
        a -> {
          // the guest names the command here: cut and escaped, it ends up in exception messages
          String command =
              a.backgroundProcesses(rec.commandTimeout).processes().stream()
                  .filter(e -> e.handle() == handle)
                  .map(e -> LogText.clean(e.command()))
                  .findFirst()
                  .orElse("?");
          SandboxProcess p = new SandboxProcess(this, command, listener);
          p.handle(handle);
          p.follow(a.attach(handle, p.sink(), rec.commandTimeout));
          processes.put(handle, p);
          return p;
        });
  }

  /** The background processes the guest knows (running, and ended but not yet collected). */
  public List<ProcList.Entry> processes() throws IOException {
    return withAgent(a -> a.backgroundProcesses(rec.commandTimeout).processes());
  }

  SandboxWatch watch(String dir, java.util.function.Consumer<dev.agentvm.protocol.FsEvent> l)
      throws IOException {
    SandboxWatch w = new SandboxWatch(this, dir, l);
    withAgent(
        a -> {
          w.start(a);
          watches.add(w);
          return Boolean.TRUE;
        });
    return w;
  }

  void forgetWatch(SandboxWatch w) {
    watches.remove(w);
  }

  /** After the VM was restored: follow every background process and watch again. */
  private void reattach() {
    AgentClient a = agent;
    if (a == null) {
      return;
    }
    for (SandboxWatch w : List.copyOf(watches)) {
      try {
        w.start(a);
      } catch (IOException e) {
        LOG.info("watch of {} in {} is gone: {}", w.directory(), rec.id, e.toString());
        watches.remove(w);
        w.lost();
      }
    }
    for (SandboxProcess p : List.copyOf(processes.values())) {
      if (!p.isAlive()) {
        processes.remove(p.handle());
        continue;
      }
      try {
        p.follow(a.attach(p.handle(), p.sink(), rec.agentDeadline));
      } catch (IOException e) {
        LOG.info("background process {} of {} is gone: {}", p.handle(), rec.id, e.toString());
        processes.remove(p.handle());
        p.lost(e);
      }
    }
  }

  /** File operations in the guest. */
  public SandboxFiles files() {
    return files;
  }

  @FunctionalInterface
  interface AgentCall<T> {
    T call(AgentClient agent) throws IOException;
  }

  /** Runs {@code call} with the agent, resuming a paused sandbox first. */
  <T> T withAgent(AgentCall<T> call) throws IOException {
    while (true) {
      lock.readLock().lock();
      try {
        requireOpen();
        AgentClient a = agent;
        if (rec.state == SandboxState.RUNNING && a != null) {
          inFlight.incrementAndGet();
          lastUsedNanos = System.nanoTime();
          try (LogContext.Scope m = logContext()) {
            return call.call(a);
          } catch (AgentChannelClosedException e) {
            RuntimeException crash = crashOf(e);
            if (crash != null) {
              throw crash;
            }
            throw e;
          } finally {
            lastUsedNanos = System.nanoTime();
            inFlight.decrementAndGet();
          }
        }
      } finally {
        lock.readLock().unlock();
      }
      resume(); // paused (or connected while paused): resume, then try again
    }
  }

  /**
   * What a closed channel means while the sandbox should run: a {@link VmCrashedException} naming
   * the console log if QEMU is gone (libvirt may notice a moment after the channel closed), a
   * {@link ConnectionException} naming the host if its libvirt does not answer (a remote host that
   * went away), else {@code null}.
   */
  private @Nullable RuntimeException crashOf(AgentChannelClosedException e) {
    VM v = vm;
    if (v == null) {
      return null;
    }
    VMState s;
    try {
      s = v.state();
      long end = System.nanoTime() + Duration.ofSeconds(3).toNanos();
      while (s == VMState.RUNNING && System.nanoTime() < end) {
        Thread.sleep(50);
        s = v.state();
      }
    } catch (InterruptedException x) {
      Thread.currentThread().interrupt();
      return null;
    } catch (ConnectionException x) {
      ConnectionException lost =
          new ConnectionException(
              x.uri(),
              "the host of sandbox "
                  + rec.id
                  + " does not answer; its agent channel closed ("
                  + e.getMessage()
                  + ")",
              x);
      lost.addSuppressed(e);
      return lost;
    } catch (RuntimeException x) {
      e.addSuppressed(x);
      return null;
    }
    if (s == VMState.RUNNING || s == VMState.PAUSED) {
      return null;
    }
    return new VmCrashedException(
        "the VM of sandbox "
            + rec.id
            + " is "
            + s
            + " ("
            + e.getMessage()
            + "); console log: "
            + v.consoleLog(),
        e);
  }

  /**
   * Saves memory and disk on the VM's host and stops the VM: no host RAM is used until it resumes.
   * The sandbox can be resumed here, or in another process through {@link Sandboxes#connect}. Kept
   * for {@link SandboxSpec#pausedRetention()}. Processes in the guest continue after the resume;
   * the agent connection is re-established then.
   */
  public void pause() {
    lock.writeLock().lock();
    try (LogContext.Scope m = logContext()) {
      requireOpen();
      if (rec.state == SandboxState.PAUSED) {
        return;
      }
      refuseWithAttachedDisk("paused");
      timed(AgentVmMeter.SANDBOX_PAUSE, this::pauseNow);
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void pauseNow() {
    long t0 = System.nanoTime();
    Path mem = pausedFile();
    Path part = home.disks().partOf(mem);
    stopInto(part);
    try {
      home.disks().commit(part, mem);
      rec.state = SandboxState.PAUSED;
      rec.owner = "";
      rec.retainUntil = Instant.now().plus(rec.pausedRetention);
      rec.save(dir);
    } catch (IOException e) {
      throw new SandboxException("recording the pause of " + rec.id + " failed: " + e, e);
    }
    LOG.info("sandbox {} paused in {} ms", rec.id, (System.nanoTime() - t0) / 1_000_000);
  }

  /**
   * Starts a paused sandbox again where it stopped and reconnects to its agent. Does nothing if it
   * runs. This process becomes its owner.
   *
   * @throws SandboxBusyException if another process resumed it first
   */
  public void resume() {
    if (!lock.isWriteLockedByCurrentThread() && state() == SandboxState.RUNNING) {
      return;
    }
    home.makeRoom(rec.memoryMiB, this);
    lock.writeLock().lock();
    try (LogContext.Scope m = logContext()) {
      requireOpen();
      if (rec.state == SandboxState.RUNNING && vm != null) {
        return;
      }
      timed(AgentVmMeter.SANDBOX_RESUME, this::resumeNow);
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void resumeNow() {
    long t0 = System.nanoTime();
    claim();
    try {
      startFrom(pausedFile());
    } catch (RuntimeException e) {
      unclaim(e);
      throw e;
    }
    try {
      home.disks().discardMemory(pausedFile(), home.background());
    } catch (IOException e) {
      LOG.warn("cannot delete {}: {}", pausedFile(), e.toString());
    }
    home.register(this);
    startLease();
    LOG.info("sandbox {} resumed in {} ms", rec.id, (System.nanoTime() - t0) / 1_000_000);
  }

  /**
   * Records the whole sandbox (memory, processes, disk) under {@code name}, to come back to with
   * {@link #rollback}. The sandbox keeps running; it stops for the time of a save and a restore.
   * Checkpoints share unchanged disk blocks; each keeps its own memory image. A name taken before
   * is replaced.
   */
  public void checkpoint(String name) {
    checkName(name);
    lock.writeLock().lock();
    try (LogContext.Scope m = logContext()) {
      requireOpen();
      refuseWithAttachedDisk("checkpointed");
      requireRunning("checkpoint");
      timed(AgentVmMeter.SANDBOX_CHECKPOINT, () -> checkpointNow(name));
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void checkpointNow(String name) {
    long t0 = System.nanoTime();
    Path mem = checkpointFile(name);
    Path part = home.disks().partOf(mem);
    try {
      Files.createDirectories(dir.resolve("checkpoints"));
      if (part.equals(mem) && rec.checkpoints.containsKey(name)) {
        // saved in place (a remote host): the checkpoint it replaces is gone from here on
        home.locked(
            () -> {
              rec.checkpoints.remove(name);
              rec.save(dir);
              return Boolean.TRUE;
            });
        home.disks().deleteMemory(mem);
      }
    } catch (IOException e) {
      throw new SandboxException("cannot make room for checkpoint " + name + " of " + rec.id, e);
    }
    stopInto(part);
    freezeTop(
        () -> {
          home.disks().commit(part, mem);
          rec.checkpoints.remove(name);
          rec.checkpoints.put(name, List.copyOf(rec.chain));
        });
    startFrom(mem);
    home.collectLayersQuietly();
    LOG.info(
        "sandbox {}: checkpoint {} taken in {} ms",
        rec.id,
        name,
        (System.nanoTime() - t0) / 1_000_000);
  }

  /**
   * Returns the sandbox to checkpoint {@code name}: memory, processes and disk as they were then.
   * What happened since is discarded (take a checkpoint first to keep it). Other checkpoints stay,
   * so one can go back and forth between them. A paused sandbox is resumed at the checkpoint.
   *
   * @throws SandboxException if there is no such checkpoint
   */
  public void rollback(String name) {
    lock.writeLock().lock();
    try (LogContext.Scope m = logContext()) {
      requireOpen();
      List<String> chain = rec.checkpoints.get(name);
      if (chain == null) {
        throw new SandboxException("sandbox " + rec.id + " has no checkpoint " + name);
      }
      timed(AgentVmMeter.SANDBOX_ROLLBACK, () -> rollbackNow(name, chain));
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void rollbackNow(String name, List<String> chain) {
    long t0 = System.nanoTime();
    boolean wasPaused = rec.state == SandboxState.PAUSED;
    if (wasPaused) {
      claim();
    }
    VM v = vm;
    vm = null;
    agent = null;
    if (v != null) {
      closeVm(v, true);
    }
    try {
      home.disks().deleteMemory(pausedFile());
      home.disks().deleteTop(dir, rec);
      home.disks().createTop(dir, rec, chain.get(0));
      rec.chain = new ArrayList<>(chain);
      // the same memory may now run twice in this sandbox's life: a new generation id reseeds
      rec.genid = UUID.randomUUID();
      rec.save(dir);
    } catch (IOException e) {
      throw new SandboxException("rolling " + rec.id + " back to " + name + " failed: " + e, e);
    }
    startFrom(checkpointFile(name));
    if (wasPaused) {
      startLease();
    }
    home.register(this);
    home.collectLayersQuietly();
    LOG.info(
        "sandbox {}: rolled back to {} in {} ms",
        rec.id,
        name,
        (System.nanoTime() - t0) / 1_000_000);
  }

  /** The names of its checkpoints, oldest first. */
  public List<String> checkpoints() {
    return info().checkpoints();
  }

  /**
   * Makes {@code n} running copies of this sandbox: memory, processes and files as they are now,
   * each with its own id, UUID, hostname, machine id and randomness. The original keeps running (it
   * stops for the time of a save and a restore). Copies share unchanged disk blocks with the
   * original; writes in one are seen by no other. Copies start without checkpoints and carry the
   * original's labels.
   *
   * @throws SandboxException if a copy could not be started (copies made so far are closed)
   */
  public List<Sandbox> fork(int n) {
    if (n < 1 || n > 64) {
      throw new IllegalArgumentException("n must be 1..64, was " + n);
    }
    lock.writeLock().lock();
    try (LogContext.Scope m = logContext()) {
      requireOpen();
      refuseWithAttachedDisk("forked");
      requireRunning("fork");
      return timedCall(AgentVmMeter.SANDBOX_FORK, () -> forkNow(n));
    } finally {
      lock.writeLock().unlock();
    }
  }

  private List<Sandbox> forkNow(int n) {
    long t0 = System.nanoTime();
    Path mem = home.disks().memory(dir, rec, "fork-" + UUID.randomUUID() + ".save");
    List<Sandbox> copies = new ArrayList<>();
    try {
      stopInto(mem);
      freezeTop(() -> {});
      List<String> chain = List.copyOf(rec.chain);
      startFrom(mem);
      for (int i = 0; i < n; i++) {
        copies.add(startCopy(mem, chain));
      }
    } catch (RuntimeException e) {
      for (Sandbox c : copies) {
        try {
          c.close();
        } catch (RuntimeException ce) {
          e.addSuppressed(ce);
        }
      }
      throw e;
    } finally {
      try {
        home.disks().deleteMemory(mem);
      } catch (IOException e) {
        LOG.warn("cannot delete {}: {}", mem, e.toString());
      }
    }
    LOG.info("sandbox {} forked into {} in {} ms", rec.id, n, (System.nanoTime() - t0) / 1_000_000);
    return copies;
  }

  private Sandbox startCopy(Path mem, List<String> chain) {
    SandboxRecord c = rec.copy();
    c.id = home.newId(rec.id);
    c.uuid = UUID.randomUUID();
    c.genid = UUID.randomUUID();
    c.created = Instant.now();
    c.owner = ProcessOwners.CURRENT;
    c.state = SandboxState.RUNNING;
    c.retainUntil = null;
    c.chain = new ArrayList<>(chain);
    c.checkpoints = new java.util.LinkedHashMap<>();
    c.top = null; // the original's: never the copy's to create or delete
    home.disks().nameNewTop(c);
    Path cdir = home.dirOf(c.id);
    VM cvm = null;
    boolean made = false;
    try {
      Files.createDirectory(cdir);
      made = true;
      c.save(cdir);
      home.disks().createTop(cdir, c, chain.get(0));
      cvm = home.connection().restore(mem, home.template(c, cdir));
      AgentClient a = cvm.awaitAgent(c.agentDeadline);
      GuestIdentity.refresh(cvm, a, c.agentDeadline);
      Sandbox copy = new Sandbox(home, cdir, c, cvm, a);
      home.register(copy);
      return copy;
    } catch (IOException | RuntimeException e) {
      SandboxException failure =
          new SandboxException("starting copy " + c.id + " of " + rec.id + " failed: " + e, e);
      if (cvm != null) {
        try {
          cvm.close();
        } catch (RuntimeException ce) {
          failure.addSuppressed(ce);
        }
      }
      if (made) { // an id taken meanwhile is another sandbox's directory
        home.deleteAll(cdir, c, failure);
      }
      throw failure;
    }
  }

  /**
   * Stops the VM and removes everything the sandbox owned: its VM, disk, paused memory and
   * checkpoints (layers that forks still use stay until they are closed too). Idempotent. The VM is
   * destroyed, not shut down: its state is discarded, so there is nothing to flush; a sandbox with
   * an attached disk is powered off gracefully first (the disk outlives it), and destroyed anyway
   * if that fails.
   */
  @Override
  public void close() {
    lock.writeLock().lock();
    try (LogContext.Scope m = logContext()) {
      if (closed) {
        return;
      }
      closed = true;
      SandboxException failure = null;
      EgressProxy proxy = egress;
      egress = null;
      if (proxy != null) {
        proxy.close();
      }
      VM v = vm;
      vm = null;
      agent = null;
      if (v != null) {
        RuntimeException flush = null;
        if (rec.hasAttachedDisk()) {
          try {
            // the disk outlives the sandbox: its file system must be flushed, not cut off
            dev.agentvm.core.ShutdownResult how = v.shutdown(ATTACHED_DISK_GRACE);
            LOG.debug("sandbox {} with an attached disk stopped: {}", rec.id, how);
          } catch (RuntimeException e) {
            flush = e; // the VM must go all the same: closeVm destroys it
          }
        }
        try {
          closeVm(v, true);
        } catch (RuntimeException e) {
          failure = new SandboxException("closing the VM of sandbox " + rec.id + " failed", e);
        }
        if (flush != null) {
          LOG.warn(
              "sandbox {}: the graceful power-off failed ({}); the VM was destroyed, its attached"
                  + " disk may not be flushed",
              rec.id,
              flush.toString());
        }
      }
      boolean kept = false;
      if (failure == null) {
        IOException e;
        String owner = null;
        if (v != null) {
          e = home.disks().deleteAll(dir, rec);
        } else {
          // a paused handle: another process may have resumed the sandbox (and changed it) since
          Sandboxes.Removal r;
          try {
            r = home.removeIfNotResumed(dir, rec);
          } catch (IOException locking) {
            r = new Sandboxes.Removal(null, locking, false);
          }
          owner = r.busyOwner();
          e = r.failure();
          kept = r.markedClosed();
        }
        if (owner != null) {
          kept = true;
          failure =
              new SandboxBusyException(
                  "sandbox "
                      + rec.id
                      + " runs under process "
                      + owner
                      + " now; it was not removed");
        } else if (e != null) {
          failure = new SandboxException("removing " + dir + " failed: " + e, e);
        }
      }
      if (failure == null) {
        unpinImages(rec, dir);
      } else if (!kept) {
        // what is left (a VM or files on a host that did not answer) goes at the next reaping
        home.markClosed(dir, rec, failure);
      }
      home.forget(this);
      home.collectLayersQuietly();
      SandboxException gone = new SandboxException("sandbox " + rec.id + " was closed");
      processes.values().forEach(p -> p.lost(gone));
      processes.clear();
      watches.forEach(SandboxWatch::lost);
      watches.clear();
      if (failure != null) {
        throw failure;
      }
      LOG.info("sandbox {} closed", rec.id);
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Its directory was deleted by the reaper (retention ended): nothing is left to close. */
  void markReaped() {
    closed = true;
    EgressProxy p = egress;
    egress = null;
    if (p != null) {
      p.close();
    }
  }

  @Override
  public String toString() {
    return "Sandbox{" + rec.id + ", " + state() + "}";
  }

  // ---- the steps (called with the write lock held)

  @FunctionalInterface
  private interface Step {
    void run() throws IOException;
  }

  /** Saves the running VM's memory into {@code file} and removes the VM (its domain). */
  private void stopInto(Path file) {
    VM v = vm;
    if (v == null) {
      throw new SandboxException("sandbox " + rec.id + " has no VM");
    }
    AgentClient a = agent;
    agent = null;
    if (a != null) {
      a.close();
    }
    try {
      v.saveMemory(file);
    } catch (RuntimeException e) {
      try {
        home.disks().deleteMemory(file);
      } catch (IOException d) {
        e.addSuppressed(d);
      }
      // the VM still runs when the save was refused: the sandbox keeps working
      try {
        AgentClient again = v.awaitAgent(rec.agentDeadline);
        agent = again;
        attachEgress(again);
      } catch (RuntimeException r) {
        e.addSuppressed(r);
      }
      throw new SandboxException("saving sandbox " + rec.id + " failed: " + e.getMessage(), e);
    }
    vm = null;
    closeVm(v, false);
  }

  /**
   * Turns the (stopped) top overlay into a read-only layer and puts a new overlay on it; the chain
   * and {@code then}'s changes are recorded together.
   */
  private void freezeTop(Step then) {
    try {
      home.locked(
          () -> {
            String layer = home.disks().freezeTop(dir, rec);
            home.disks().nameNewTop(rec);
            home.disks().createTop(dir, rec, layer);
            rec.chain.add(0, layer);
            then.run();
            rec.save(dir);
            return Boolean.TRUE;
          });
    } catch (IOException | RuntimeException e) {
      throw new SandboxException("freezing the disk of " + rec.id + " failed: " + e, e);
    }
  }

  /** Starts the VM from a memory image and connects to its agent. */
  private void startFrom(Path memory) {
    long t0 = System.nanoTime();
    VM v = home.connection().restore(memory, home.template(rec, dir));
    try {
      long t1 = System.nanoTime();
      AgentClient a = v.awaitAgent(rec.agentDeadline);
      long t2 = System.nanoTime();
      agent = a;
      vm = v;
      attachEgress(a);
      reattach();
      LOG.debug(
          "sandbox {} started from {}: restore {} ms, agent {} ms, re-attach {} ms",
          rec.id,
          memory.getFileName(),
          (t1 - t0) / 1_000_000,
          (t2 - t1) / 1_000_000,
          (System.nanoTime() - t2) / 1_000_000);
    } catch (RuntimeException e) {
      if (vm == v) { // not left pointing at a VM that is closed below
        vm = null;
        agent = null;
      }
      try {
        v.close();
      } catch (RuntimeException c) {
        e.addSuppressed(c);
      }
      throw e;
    }
  }

  /** Records this process as the owner of the paused sandbox, unless another process was first. */
  private void claim() {
    try {
      home.locked(
          () -> {
            SandboxRecord now = SandboxRecord.load(dir);
            if (now.state != SandboxState.PAUSED) {
              throw new SandboxBusyException(
                  "sandbox " + rec.id + " was resumed by process " + now.owner);
            }
            rec.state = SandboxState.RUNNING;
            rec.owner = ProcessOwners.CURRENT;
            rec.retainUntil = null;
            rec.save(dir);
            return Boolean.TRUE;
          });
    } catch (IOException e) {
      throw new SandboxException("claiming " + rec.id + " failed: " + e, e);
    }
  }

  private void unclaim(RuntimeException failure) {
    rec.state = SandboxState.PAUSED;
    rec.owner = "";
    rec.retainUntil = Instant.now().plus(rec.pausedRetention);
    try {
      rec.save(dir);
    } catch (IOException e) {
      failure.addSuppressed(e);
    }
  }

  private static void closeVm(VM v, boolean destroy) {
    if (destroy) {
      try {
        v.destroy();
      } catch (RuntimeException e) {
        LOG.debug("destroying {}: {}", v.name(), e.getMessage());
      }
    }
    v.close();
  }

  private Path checkpointFile(String name) {
    return home.disks().memory(dir, rec, "checkpoints/" + name + ".save");
  }

  private Path pausedFile() {
    return home.disks().memory(dir, rec, PAUSED_FILE);
  }

  private static void checkName(String name) {
    if (!CHECKPOINT_NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "checkpoint names are 1-64 of [A-Za-z0-9_.-], not starting with '.': " + name);
    }
  }

  private void requireOpen() {
    if (closed) {
      throw new SandboxException("sandbox " + rec.id + " is closed");
    }
  }

  /** Its memory would not match the attached disk afterwards, which the caller keeps using. */
  private void refuseWithAttachedDisk(String what) {
    if (rec.hasAttachedDisk()) {
      throw new SandboxException(
          "sandbox "
              + rec.id
              + " has an attached disk ("
              + rec.attachedDisk
              + ") and cannot be "
              + what);
    }
  }

  private void requireRunning(String what) {
    if (rec.state != SandboxState.RUNNING || vm == null) {
      resumeLocked(what);
    }
  }

  private void resumeLocked(String what) {
    // the write lock is held and reentrant: resume() takes it again
    LOG.debug("resuming {} for {}", rec.id, what);
    resume();
  }
}
