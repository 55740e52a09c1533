package dev.agentvm.core.agent;

import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Threads;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pings a guest agent on an interval and tells listeners when it stops answering: {@link
 * Health#WARN} after {@code warnAfter} without an answer, {@link Health#DEAD} after {@code
 * deadAfter} or when the channel closes. DEAD is final.
 *
 * <pre>{@code
 * HeartbeatMonitor hb = HeartbeatMonitor.start(agent, HeartbeatMonitor.Settings.DEFAULT,
 *     (from, to, silence) -> log.warn("agent {} -> {}", from, to));
 * }</pre>
 */
public final class HeartbeatMonitor implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(HeartbeatMonitor.class);

  /** The agent's health as the heartbeat sees it. */
  public enum Health {
    HEALTHY,
    WARN,
    DEAD
  }

  /** Hears health changes. Called on the monitor's thread: must be fast, must not throw. */
  @FunctionalInterface
  public interface Listener {
    void onHealthChange(Health from, Health to, Duration silence);
  }

  /**
   * How often the heartbeat pings and how much silence it tolerates.
   *
   * @param interval time between pings
   * @param warnAfter silence before WARN
   * @param deadAfter silence before DEAD
   */
  public record Settings(Duration interval, Duration warnAfter, Duration deadAfter) {
    public static final Settings DEFAULT =
        new Settings(Duration.ofSeconds(1), Duration.ofSeconds(5), Duration.ofSeconds(10));

    public Settings {
      if (interval.isNegative()
          || interval.isZero()
          || warnAfter.compareTo(deadAfter) > 0
          || warnAfter.isNegative()) {
        throw new IllegalArgumentException(
            "need 0 < interval and 0 <= warnAfter <= deadAfter, were "
                + interval
                + ", "
                + warnAfter
                + ", "
                + deadAfter);
      }
    }
  }

  private final AgentClient agent;
  private final Settings settings;
  private final List<Listener> listeners = new CopyOnWriteArrayList<>();
  private final ScheduledExecutorService timer;
  private final AtomicBoolean closed = new AtomicBoolean();
  private volatile long lastAnswerNanos = System.nanoTime();
  private volatile Health health = Health.HEALTHY;
  private @Nullable ScheduledFuture<?> task;

  private HeartbeatMonitor(AgentClient agent, Settings settings) {
    this.agent = agent;
    this.settings = settings;
    this.timer =
        Executors.newSingleThreadScheduledExecutor(Threads.namedDaemons("agentvm-heartbeat"));
  }

  public static HeartbeatMonitor start(AgentClient agent, Settings settings, Listener listener) {
    HeartbeatMonitor m = new HeartbeatMonitor(Objects.requireNonNull(agent), settings);
    m.listeners.add(listener);
    long ms = settings.interval().toMillis();
    m.task = m.timer.scheduleWithFixedDelay(m::beat, 0, ms, TimeUnit.MILLISECONDS);
    return m;
  }

  public Health health() {
    return health;
  }

  /** Time since the agent last answered. */
  public Duration silence() {
    return Duration.ofNanos(System.nanoTime() - lastAnswerNanos);
  }

  @SuppressWarnings("FutureReturnValueIgnored") // a lost ping shows as silence, judged next beat
  private void beat() {
    if (health == Health.DEAD) {
      return;
    }
    if (!agent.isOpen()) {
      move(Health.DEAD);
      return;
    }
    // Silence is judged before the next ping goes out, so nothing the ping does (the guest not
    // reading, a full send queue) can delay the verdict.
    long silentNanos = System.nanoTime() - lastAnswerNanos;
    if (silentNanos >= settings.deadAfter().toNanos()) {
      move(Health.DEAD);
      return;
    } else if (silentNanos >= settings.warnAfter().toNanos() && health == Health.HEALTHY) {
      move(Health.WARN);
    }
    // An answer that takes longer than the interval still counts when it comes: pings overlap.
    // pingAsync never waits for the write.
    try {
      agent
          .pingAsync()
          .thenRun(
              () -> {
                lastAnswerNanos = System.nanoTime();
                if (health == Health.WARN) {
                  move(Health.HEALTHY);
                }
              });
    } catch (IOException e) {
      LOG.debug("ping failed: {}", LogText.clean(String.valueOf(e.getMessage())));
    }
  }

  private synchronized void move(Health to) {
    Health from = health;
    if (from == to || from == Health.DEAD) {
      return;
    }
    health = to;
    Duration s = silence();
    if (to == Health.HEALTHY) {
      LOG.info("guest agent answers again after {} ms", s.toMillis());
    } else {
      LOG.warn(
          "guest agent {}: no answer for {} ms",
          to == Health.DEAD ? "DEAD" : "not answering",
          s.toMillis());
    }
    for (Listener l : listeners) {
      try {
        l.onHealthChange(from, to, s);
      } catch (RuntimeException e) {
        LOG.warn("heartbeat listener threw", e);
      }
    }
  }

  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      if (task != null) {
        task.cancel(false);
      }
      timer.shutdownNow();
    }
  }
}
