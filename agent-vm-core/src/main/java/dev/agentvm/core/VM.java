package dev.agentvm.core;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.HeartbeatMonitor;
import dev.agentvm.core.agent.UnixSocketTransport;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.DomainLifecycleListener;
import dev.agentvm.core.spi.DomainStatus;
import dev.agentvm.internal.LogContext;
import dev.agentvm.internal.LogText;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One virtual machine: a libvirt domain plus its runtime directory (agent socket, console log).
 * Thread-safe. {@link #close()} stops it (gracefully, then forcibly), undefines it and removes its
 * runtime directory; it is idempotent.
 *
 * <pre>{@code
 * try (VM vm = connection.define(template)) {
 *   vm.start();
 *   AgentClient agent = vm.awaitAgent(Duration.ofSeconds(60));
 *   System.out.println(agent.hello());
 * }
 * }</pre>
 *
 * <p>Logging: one logger for the class; its lines name the VM, and while a call on it runs the VM's
 * name is in the MDC under {@code vm} ({@link LogContext#VM}), so lines that lower layers log on
 * the calling thread carry it too.
 */
// "try": the MDC scopes are try-with-resources blocks whose variable is unused by design
@SuppressWarnings("try")
public final class VM implements AutoCloseable {
  /** Grace period {@link #close()} gives a running guest before destroying it. */
  public static final Duration DEFAULT_SHUTDOWN_GRACE = Duration.ofSeconds(10);

  private static final Logger LOG = LoggerFactory.getLogger(VM.class);

  private final LibvirtConnection connection;
  private final DomainHandle domain;
  private final VMTemplate template;
  private final VirtType virtType;
  private final Object monitor = new Object();
  private final DomainLifecycleListener listener;
  private final AtomicBoolean closed = new AtomicBoolean();
  private volatile boolean started;
  private volatile boolean stopping;
  private volatile VMState lastState = VMState.DEFINED;
  private @Nullable AgentClient agent; // guarded by monitor
  private @Nullable HeartbeatMonitor heartbeat; // guarded by monitor

  VM(LibvirtConnection connection, DomainHandle domain, VMTemplate template, VirtType virtType) {
    this.connection = connection;
    this.domain = domain;
    this.template = template;
    this.virtType = virtType;
    this.listener =
        (name, event) -> {
          if (name.equals(domain.name())) {
            synchronized (monitor) {
              monitor.notifyAll();
            }
          }
        };
    connection.backend().addLifecycleListener(listener);
    connection.track(this);
  }

  /**
   * A VM object for a domain this process did not define (an orphan the reaper found, or a VM
   * attached by name): its template is the one read back from the domain's definition.
   */
  static VM adopt(LibvirtConnection conn, DomainHandle domain, VMTemplate t) {
    VM vm = new VM(conn, domain, t, t.virtType());
    vm.started = true; // a shut-off orphan is STOPPED, not DEFINED
    return vm;
  }

  /** For a VM that came to life running (restored from a memory image). */
  void markStarted() {
    started = true;
    state();
  }

  /**
   * The libvirt URI of the host this VM is on (with a {@link HostSet}: the host it was placed on).
   */
  public String hostUri() {
    return connection.uri();
  }

  public String name() {
    return domain.name();
  }

  /** The VM's name in the MDC until the scope closes (the outer value back after). */
  private LogContext.Scope logContext() {
    return LogContext.put(LogContext.VM, domain.name());
  }

  public String uuid() {
    return domain.uuid();
  }

  public VMTemplate template() {
    return template;
  }

  /** The virt type this VM was defined with (never {@link VirtType#AUTO}). */
  public VirtType virtType() {
    return virtType;
  }

  /**
   * What the running VM costs the host, measured by the hypervisor: CPU time and QEMU's resident
   * memory. Numbers the guest cannot change, unlike what its agent reports in STATUS.
   *
   * @throws NoSuchVmException if the VM no longer exists
   */
  public VmStats stats() {
    try (LogContext.Scope c = logContext()) {
      return domain.stats();
    }
  }

  /**
   * The guest's serial console log on this machine, written by the hypervisor while the VM runs. On
   * a remote host the log is on that host: read it with {@link #consoleTail}.
   */
  public Path consoleLog() {
    return template.consoleLog();
  }

  /**
   * At most the last {@code maxBytes} of the guest's console log, as the guest wrote it (read it as
   * untrusted text), from this machine or the VM's remote host; empty if there is none yet.
   */
  public java.util.Optional<byte[]> consoleTail(int maxBytes) {
    if (maxBytes < 0) {
      throw new IllegalArgumentException("maxBytes < 0");
    }
    return domain.consoleTail(maxBytes);
  }

  /** Where to read the console log, for messages: a path here, or the VM's host. */
  private String consoleWhere() {
    return connection.backend().isLocal()
        ? consoleLog().toString()
        : "on " + connection.uri() + " (VM.consoleTail)";
  }

  /**
   * The agent's channel: the VM's UNIX socket on this machine, or a stream through the hypervisor
   * when the VM runs on a remote host.
   */
  private dev.agentvm.core.agent.AgentTransport agentTransport() {
    return connection.backend().isLocal()
        ? new UnixSocketTransport(template.agentSocket())
        : new dev.agentvm.core.agent.DomainChannelTransport(
            domain, dev.agentvm.protocol.Protocol.VIRTIO_SERIAL_PORT_NAME);
  }

  /**
   * The hypervisor's handle of this VM, for extension modules (snapshots, storage). Operations on
   * it bypass this object's state checks.
   */
  public DomainHandle domain() {
    return domain;
  }

  /** The current state, read from the hypervisor. */
  public VMState state() {
    DomainStatus s = domain.status();
    VMState now =
        switch (s.kind()) {
          case NOT_FOUND -> VMState.UNDEFINED;
          case RUNNING -> stopping ? VMState.STOPPING : VMState.RUNNING;
          case PAUSED -> VMState.PAUSED;
          case SHUTTING_DOWN -> VMState.STOPPING;
          case CRASHED -> VMState.CRASHED;
          case SHUTOFF ->
              s.crashed() ? VMState.CRASHED : started ? VMState.STOPPED : VMState.DEFINED;
          case OTHER -> lastState;
        };
    VMState before = lastState;
    if (now != before) {
      lastState = now;
      try (LogContext.Scope c = logContext()) {
        if (now == VMState.CRASHED) {
          LOG.warn("VM {}: {} -> CRASHED (console: {})", name(), before, consoleWhere());
        } else {
          LOG.debug("VM {}: {} -> {}", name(), before, now);
        }
      }
    }
    return now;
  }

  /**
   * Starts the VM.
   *
   * @throws VmStateException if it is running, paused or undefined
   * @throws VmStartException if the hypervisor could not start it
   */
  public void start() {
    try (LogContext.Scope c = logContext()) {
      VMState s = state();
      if (!s.canTransitionTo(VMState.RUNNING) || s == VMState.PAUSED) {
        throw new VmStateException("cannot start VM " + name() + " in state " + s);
      }
      dropAgent(); // a client of an earlier run of the guest
      try {
        domain.start();
      } catch (AgentVmException e) {
        throw new VmStartException("starting VM " + name() + " failed: " + e.getMessage(), e);
      }
      started = true;
      stopping = false;
      state();
      LOG.debug("VM {}: started ({})", name(), virtType);
    }
  }

  /**
   * Connects to the guest agent (once; later calls return the same client), waiting until it
   * answers HELLO or the deadline passes.
   *
   * @throws VmStartException if the agent did not answer in time or the VM stopped meanwhile
   */
  public AgentClient awaitAgent(Duration deadline) {
    try (LogContext.Scope c = logContext()) {
      return connectAgent(deadline);
    }
  }

  private AgentClient connectAgent(Duration deadline) {
    synchronized (monitor) {
      if (agent != null && agent.isOpen()) {
        return agent;
      }
    }
    dropAgent(); // a closed client (the guest stopped or was restored) is of no use
    VMState s = state();
    if (s != VMState.RUNNING) {
      throw new VmStateException("VM " + name() + " is " + s + ", its agent cannot answer");
    }
    try {
      AgentClient c = AgentClient.connect(agentTransport(), deadline);
      synchronized (monitor) {
        if (agent == null || !agent.isOpen()) {
          agent = c;
        } else {
          c.close();
        }
        return agent;
      }
    } catch (IOException e) {
      VMState now = state();
      throw new VmStartException(
          "guest agent of VM "
              + name()
              + " did not answer within "
              + deadline.toMillis()
              + " ms (VM is "
              + now
              + "; console log: "
              + consoleWhere()
              + "): "
              + e.getMessage(),
          e);
    }
  }

  /**
   * Drops the current agent connection (and heartbeat) and connects anew: needed after the guest
   * was reverted to a snapshot, whose agent remembers a connection that no longer exists.
   *
   * @throws VmStartException if the agent did not answer in time
   */
  public AgentClient reconnectAgent(Duration deadline) {
    dropAgent();
    return awaitAgent(deadline);
  }

  private void stopHeartbeat() {
    synchronized (monitor) {
      if (heartbeat != null) {
        heartbeat.close();
        heartbeat = null;
      }
    }
  }

  private void dropAgent() {
    stopHeartbeat();
    synchronized (monitor) {
      if (agent != null) {
        agent.close();
        agent = null;
      }
    }
  }

  /**
   * Saves the running VM's memory and device state to {@code file} and stops it; the domain stays
   * defined. Start copies of it with {@link LibvirtConnection#restore}. The agent connection is
   * closed first, so the saved agent waits for a new host.
   *
   * @throws VmStateException if the VM is not running
   * @throws SnapshotException if the hypervisor refused, e.g. because a 9p share is mounted in the
   *     guest (QEMU cannot save a VM then: mount shares only after restoring)
   */
  public void saveMemory(Path file) {
    try (LogContext.Scope c = logContext()) {
      saveMemoryInto(file);
    }
  }

  private void saveMemoryInto(Path file) {
    VMState s = state();
    if (s != VMState.RUNNING) {
      throw new VmStateException("cannot save the memory of VM " + name() + " while it is " + s);
    }
    dropAgent();
    try {
      domain.saveMemory(file);
    } catch (AgentVmException e) {
      throw new SnapshotException(explainSaveFailure(name(), e.getMessage()), e);
    }
    state();
    LOG.debug("VM {}: memory saved to {}", name(), file);
  }

  /** Turns QEMU's refusal to save with a mounted 9p share into advice. */
  public static String explainSaveFailure(String vm, @Nullable String message) {
    if (message != null && message.contains("VirtFS")) {
      return "cannot save VM "
          + vm
          + ": a virtio-9p share is mounted in the guest, and QEMU cannot save or migrate a guest"
          + " then. Unmount it first, or mount shares only after the snapshot or restore"
          + " (AgentClient.mount). QEMU said: "
          + message;
    }
    return "saving VM " + vm + " failed: " + message;
  }

  /**
   * Starts pinging the guest agent (connecting to it first if needed); {@link #health()} then
   * follows its answers. Idempotent: a second call returns the running monitor.
   */
  public HeartbeatMonitor startHeartbeat(
      HeartbeatMonitor.Settings settings, HeartbeatMonitor.Listener listener) {
    AgentClient a = awaitAgent(settings.deadAfter().multipliedBy(6));
    synchronized (monitor) {
      if (heartbeat == null) {
        heartbeat =
            HeartbeatMonitor.start(
                a,
                settings,
                (from, to, silence) -> {
                  // on the heartbeat's thread: the VM's name in the MDC for the listener too
                  try (LogContext.Scope c = logContext()) {
                    if (to == HeartbeatMonitor.Health.DEAD) {
                      LOG.warn(
                          "VM {}: guest agent declared dead after {} ms of silence; the VM is"
                              + " unhealthy",
                          name(),
                          silence.toMillis());
                    }
                    listener.onHealthChange(from, to, silence);
                  }
                });
      }
      return heartbeat;
    }
  }

  /**
   * The guest agent's health from the heartbeat, or {@link HeartbeatMonitor.Health#HEALTHY} if no
   * heartbeat runs. A VM whose agent is DEAD must not be given work.
   */
  public HeartbeatMonitor.Health health() {
    synchronized (monitor) {
      return heartbeat == null ? HeartbeatMonitor.Health.HEALTHY : heartbeat.health();
    }
  }

  /**
   * Waits until the VM reaches {@code target}.
   *
   * @return true if it did, false if the timeout passed first
   */
  public boolean waitForState(VMState target, Duration timeout) {
    long end = System.nanoTime() + timeout.toNanos();
    while (true) {
      if (state() == target) {
        return true;
      }
      long left = end - System.nanoTime();
      if (left <= 0) {
        return false;
      }
      synchronized (monitor) {
        try {
          // woken by lifecycle events; the poll bound covers a connection without events
          monitor.wait(Math.max(1, Math.min(100, left / 1_000_000)));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new AgentVmException(
              "interrupted waiting for " + name() + " to reach " + target, e);
        }
      }
    }
  }

  /**
   * Stops the VM: asks the guest to power off (ACPI, and the guest agent when it is reachable),
   * waits up to {@code grace}, then destroys it. With a zero grace it is destroyed at once (for VMs
   * whose state is thrown away anyway).
   */
  public ShutdownResult shutdown(Duration grace) {
    try (LogContext.Scope c = logContext()) {
      return stop(grace);
    }
  }

  private ShutdownResult stop(Duration grace) {
    VMState s = state();
    if (!s.isActive()) {
      return ShutdownResult.ALREADY_STOPPED;
    }
    stopping = true;
    stopHeartbeat(); // silence from now on is intended, not a failure
    long end = System.nanoTime() + grace.toNanos();
    if (s == VMState.PAUSED) {
      LOG.debug("VM {}: paused: cannot shut down gracefully, destroying", name());
    } else if (grace.isZero() || grace.isNegative()) {
      LOG.debug("VM {}: no grace period: destroying", name());
    } else {
      requestGuestPowerOff(grace);
      if (waitForStopped(Duration.ofNanos(Math.max(0, end - System.nanoTime())))) {
        LOG.debug("VM {}: shut down gracefully", name());
        return ShutdownResult.GRACEFUL;
      }
      LOG.warn("VM {}: did not power off within {} ms, destroying it", name(), grace.toMillis());
    }
    try {
      domain.destroy();
    } catch (VmStateException e) {
      // it stopped on its own between our check and the destroy
    }
    waitForStopped(Duration.ofSeconds(10));
    return ShutdownResult.FORCED;
  }

  private void requestGuestPowerOff(Duration grace) {
    try {
      domain.requestShutdown(); // ACPI: works for full distributions
    } catch (AgentVmException e) {
      LOG.debug("VM {}: ACPI shutdown request refused: {}", name(), e.getMessage());
    }
    AgentClient a;
    synchronized (monitor) {
      a = agent;
    }
    Duration agentDeadline =
        grace.compareTo(Duration.ofSeconds(4)) < 0 ? grace.dividedBy(2) : Duration.ofSeconds(2);
    try {
      if (a == null || !a.isOpen()) { // the caller may have closed the client it was handed
        AgentClient fresh = AgentClient.connect(agentTransport(), agentDeadline);
        synchronized (monitor) {
          if (agent == null || !agent.isOpen()) {
            agent = fresh;
            a = fresh;
          } else {
            a = agent; // another thread connected first: keep one client
            fresh.close();
          }
        }
      }
      a.requestShutdown(agentDeadline);
    } catch (IOException e) {
      LOG.debug(
          "VM {}: agent shutdown request failed: {}",
          name(),
          LogText.clean(String.valueOf(e.getMessage())));
    }
  }

  private boolean waitForStopped(Duration timeout) {
    long end = System.nanoTime() + timeout.toNanos();
    while (true) {
      VMState s = state();
      if (!s.isActive()) {
        return true;
      }
      if (System.nanoTime() >= end) {
        return false;
      }
      waitForState(
          VMState.STOPPED,
          Duration.ofMillis(Math.min(200, Math.max(1, (end - System.nanoTime()) / 1_000_000))));
    }
  }

  /** Stops the VM at once, without asking the guest. */
  public void destroy() {
    try (LogContext.Scope c = logContext()) {
      stopping = true;
      domain.destroy();
      waitForStopped(Duration.ofSeconds(10));
    }
  }

  public void pause() {
    try (LogContext.Scope c = logContext()) {
      VMState s = state();
      if (s != VMState.RUNNING) {
        throw new VmStateException("cannot pause VM " + name() + " in state " + s);
      }
      domain.suspend();
    }
  }

  /**
   * Resumes a VM paused by {@link #pause()}. Its clock stood still meanwhile: when its agent is
   * connected, a new HELLO (up to {@value #CLOCK_HELLO_SECONDS} s) lets the agent set it again; a
   * HELLO that goes unanswered is logged and does not fail the resume.
   */
  public void resume() {
    try (LogContext.Scope c = logContext()) {
      VMState s = state();
      if (s != VMState.PAUSED) {
        throw new VmStateException("cannot resume VM " + name() + " in state " + s);
      }
      domain.resume();
      AgentClient a;
      synchronized (monitor) {
        a = agent;
      }
      if (a != null) {
        try {
          a.helloAgain(Duration.ofSeconds(CLOCK_HELLO_SECONDS));
        } catch (IOException | RuntimeException e) {
          LOG.warn(
              "VM {}: no HELLO answer after resuming, its clock may be late: {}",
              LogText.clean(name()),
              LogText.clean(e.toString()));
        }
      }
    }
  }

  /** How long {@link #resume()} waits for the agent's HELLO answer. */
  private static final int CLOCK_HELLO_SECONDS = 10;

  /**
   * Removes the domain definition. The VM must not be running.
   *
   * @throws VmStateException if it is running
   */
  public void undefine() {
    VMState s = state();
    if (s.isActive()) {
      throw new VmStateException("cannot undefine VM " + name() + " while it is " + s);
    }
    if (s != VMState.UNDEFINED) {
      domain.undefine();
    }
    lastState = VMState.UNDEFINED;
  }

  /**
   * Stops the VM if it runs (graceful, then forced after {@link #DEFAULT_SHUTDOWN_GRACE}),
   * undefines it and deletes its runtime directory. Every step is tried even if an earlier one
   * failed; the runtime directory is kept if the domain could not be undefined, so nothing is lost
   * track of. A caller's interrupt does not cut this short; its flag is set again afterwards.
   *
   * @throws AgentVmException the first failure, with later ones suppressed
   */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    // a caller interrupted while it made or used the VM (an executor shut down under it) still
    // needs the VM gone: with the flag set every wait below would end at once and leave it running
    boolean interrupted = Thread.interrupted();
    try (LogContext.Scope c = logContext()) {
      closeSteps();
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void closeSteps() {
    List<RuntimeException> failures = new ArrayList<>();
    try {
      shutdown(DEFAULT_SHUTDOWN_GRACE);
    } catch (RuntimeException e) {
      failures.add(e);
      // interrupted during the graceful phase, say: the VM must still go before it is undefined
      boolean interrupted = Thread.interrupted();
      try {
        stop(Duration.ZERO); // the forced phase alone
      } catch (RuntimeException again) {
        failures.add(again);
      } finally {
        if (interrupted) {
          Thread.currentThread().interrupt();
        }
      }
    }
    dropAgent();
    boolean undefined = false;
    try {
      undefine();
      undefined = true;
    } catch (RuntimeException e) {
      failures.add(e);
    }
    connection.backend().removeLifecycleListener(listener);
    connection.forget(this);
    if (undefined) {
      try {
        deleteTree(template.runDir());
      } catch (IOException | UncheckedIOException e) {
        failures.add(
            new AgentVmException(
                "removing " + template.runDir() + " failed: " + e.getMessage(), e));
      }
    } else {
      LOG.warn(
          "VM {} could not be undefined; keeping {} for inspection", name(), template.runDir());
    }
    if (!failures.isEmpty()) {
      RuntimeException first = failures.get(0);
      failures.subList(1, failures.size()).forEach(first::addSuppressed);
      throw first;
    }
  }

  static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }

  @Override
  public String toString() {
    return "VM{" + name() + ", " + lastState + "}";
  }
}
