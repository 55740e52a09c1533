package dev.agentvm.execution.internal;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;

/**
 * The meters of one agent-vm object (a pool with its executors, or the sandboxes of a host),
 * reported into every registry bound to it, each meter with the owner's tags. Without a registry
 * nothing is recorded. Gauges and counters declared here appear in a registry as soon as it is
 * bound (a counter at 0 is worth seeing); timers and tagged counters when first used. Not API.
 *
 * <p>Binding rather than a registry given once lets a user wire meters when it suits them
 * (Micrometer's {@link MeterBinder}, e.g. Spring Boot's), and lets a pool and the executors on it
 * share whatever registries either was given. A Micrometer {@code CompositeMeterRegistry} would do
 * the fan-out too, but warns when a registry joins after meters were made, which binding always
 * does.
 *
 * <p>Thread-safe; recording takes this object's monitor, which nothing else is held under: record
 * outside the owner's own locks (a gauge's function takes the owner's lock when a registry reads
 * it).
 */
public final class Meters implements MeterBinder {
  private final Tags common;
  private final String owner;
  private final List<Declared> declared = new ArrayList<>(); // guarded by this
  // registries compare by identity (none overrides equals): one entry per registry object
  private final IdentityHashMap<MeterRegistry, Set<Meter>> bound =
      new IdentityHashMap<>(); // guarded by this
  private boolean closed; // guarded by this

  /**
   * @param common tags of every meter, e.g. {@code pool=<name>}
   * @param owner what owns them, for error messages ({@code pool 'clones'})
   */
  public Meters(Tags common, String owner) {
    this.common = common;
    this.owner = owner;
  }

  private interface Registration {
    Meter register(MeterRegistry registry);
  }

  private record Declared(AgentVmMeter meter, Tags tags, Registration registration) {}

  /** A gauge of {@code f(obj)}; the registry holds {@code obj} weakly, as Micrometer's do. */
  public synchronized <T> void gauge(AgentVmMeter m, Tags tags, T obj, ToDoubleFunction<T> f) {
    require(m, AgentVmMeter.Type.GAUGE);
    declare(
        m,
        tags,
        r ->
            Gauge.builder(m.meterName(), obj, f)
                .description(m.description())
                .baseUnit(m.baseUnit())
                .tags(common)
                .tags(tags)
                .register(r));
  }

  /** A counter that exists (at 0) in every bound registry from the start. */
  public synchronized void counter(AgentVmMeter m, Tags tags) {
    require(m, AgentVmMeter.Type.COUNTER);
    declare(m, tags, r -> counterIn(r, m, tags));
  }

  /** Declares a meter once: a second declaration of the same meter and tags does nothing. */
  private void declare(AgentVmMeter m, Tags tags, Registration registration) {
    for (Declared d : declared) {
      if (d.meter() == m && d.tags().equals(tags)) {
        return;
      }
    }
    Declared d = new Declared(m, tags, registration);
    declared.add(d);
    if (!closed) {
      bound.forEach((r, meters) -> meters.add(registration.register(r)));
    }
  }

  /** Adds one to counter {@code m} with {@code tags} in every bound registry. */
  public synchronized void increment(AgentVmMeter m, Tags tags) {
    add(m, tags, 1);
  }

  /** Adds {@code amount} to counter {@code m} with {@code tags} in every bound registry. */
  public synchronized void add(AgentVmMeter m, Tags tags, double amount) {
    require(m, AgentVmMeter.Type.COUNTER);
    if (closed) {
      return;
    }
    bound.forEach(
        (r, meters) -> {
          Counter c = counterIn(r, m, tags);
          meters.add(c);
          c.increment(amount);
        });
  }

  /** Records {@code nanos} in timer {@code m} with {@code tags} in every bound registry. */
  public synchronized void record(AgentVmMeter m, Tags tags, long nanos) {
    require(m, AgentVmMeter.Type.TIMER);
    if (closed) {
      return;
    }
    bound.forEach(
        (r, meters) -> {
          Timer.Builder b =
              Timer.builder(m.meterName()).description(m.description()).tags(common).tags(tags);
          if (m.histogram()) {
            b.publishPercentileHistogram();
          }
          Timer t = b.register(r);
          meters.add(t);
          t.record(nanos, TimeUnit.NANOSECONDS);
        });
  }

  private Counter counterIn(MeterRegistry r, AgentVmMeter m, Tags tags) {
    return Counter.builder(m.meterName())
        .description(m.description())
        .baseUnit(m.baseUnit())
        .tags(common)
        .tags(tags)
        .register(r);
  }

  private static void require(AgentVmMeter m, AgentVmMeter.Type type) {
    if (m.type() != type) {
      throw new IllegalArgumentException(m.meterName() + " is a " + m.type() + ", not a " + type);
    }
  }

  /**
   * Reports into {@code registry} too. Binding a registry again does nothing; after {@link
   * #close()} binding does nothing.
   *
   * @throws IllegalStateException if another live owner with the same tags (another pool of the
   *     same name) already reports a gauge of these into {@code registry}: its gauges would win and
   *     this owner's would silently be missing
   */
  @Override
  public synchronized void bindTo(MeterRegistry registry) {
    if (closed || bound.containsKey(registry)) {
      return;
    }
    for (Declared d : declared) {
      if (d.meter().type() == AgentVmMeter.Type.GAUGE
          && registry.find(d.meter().meterName()).tags(common).tags(d.tags()).gauge() != null) {
        throw new IllegalStateException(
            "another "
                + owner
                + " already reports "
                + d.meter().meterName()
                + " "
                + common.and(d.tags())
                + " into this registry: give each its own name");
      }
    }
    Set<Meter> meters = new LinkedHashSet<>();
    for (Declared d : declared) {
      meters.add(d.registration().register(registry));
    }
    bound.put(registry, meters);
  }

  /** Whether {@code registry} is bound. */
  public synchronized boolean isBound(MeterRegistry registry) {
    return bound.containsKey(registry);
  }

  /**
   * Stops recording and removes every meter made here from every bound registry: a closed pool's
   * gauges would otherwise linger (reading NaN once it is collected) and keep its name taken.
   * Idempotent.
   */
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    bound.forEach((r, meters) -> meters.forEach(r::remove));
    bound.clear();
  }
}
