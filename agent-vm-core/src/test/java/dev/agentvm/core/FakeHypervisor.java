package dev.agentvm.core;

import dev.agentvm.core.agent.AgentTransport;
import dev.agentvm.core.spi.DomainDescription;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.DomainLifecycleListener;
import dev.agentvm.core.spi.DomainStatus;
import dev.agentvm.core.spi.HypervisorBackend;
import dev.agentvm.core.spi.NetworkBackend;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * An in-memory {@link HypervisorBackend} for unit tests: domains are templates with a state, no XML
 * anywhere. Guests power off at once when asked; there are no networks, no memory images and no
 * streams. Thread-safe.
 */
public class FakeHypervisor implements HypervisorBackend {
  private final Map<String, FakeDomain> domains = new ConcurrentHashMap<>();
  private final List<DomainLifecycleListener> listeners = new CopyOnWriteArrayList<>();

  /** Adds a domain as if another process had defined it from {@code t} (owner as in {@code t}). */
  public FakeDomain add(VMTemplate t, VirtType type) {
    FakeDomain d = new FakeDomain(DomainDescription.of(t, t.name() + "/" + type));
    domains.put(t.name(), d);
    return d;
  }

  /** Puts {@code d} in place of the domain of the same name. */
  public void replace(FakeDomain d) {
    domains.put(d.name(), d);
  }

  /** Adds a domain that is not agent-vm's. */
  public FakeDomain addForeign(String name) {
    FakeDomain d =
        new FakeDomain(
            new DomainDescription(
                name,
                java.util.UUID.randomUUID().toString(),
                null,
                null,
                null,
                List.of(),
                List.of(),
                List.of(),
                name));
    domains.put(name, d);
    return d;
  }

  @Override
  public String uri() {
    return "fake:///" + System.identityHashCode(this);
  }

  @Override
  public Set<String> advertisedDomainTypes() {
    return Set.of("qemu");
  }

  @Override
  public String versionFingerprint() {
    return "fake " + System.identityHashCode(this);
  }

  @Override
  public DomainHandle define(VMTemplate template, VirtType type) {
    if (domains.containsKey(template.name())) {
      throw new HypervisorException("domain " + template.name() + " already exists", null);
    }
    return add(template, type);
  }

  @Override
  public DomainHandle createTransient(VMTemplate template, VirtType type) {
    FakeDomain d = add(template, type);
    d.transientDomain = true;
    d.start();
    return d;
  }

  @Override
  public Optional<DomainHandle> lookup(String name) {
    return Optional.ofNullable(domains.get(name));
  }

  @Override
  public List<String> domainNames() {
    return new ArrayList<>(domains.keySet());
  }

  @Override
  public DomainHandle restore(Path file, VMTemplate identity) {
    throw new UnsupportedOperationException("the fake hypervisor keeps no memory images");
  }

  @Override
  public NetworkBackend networks() {
    throw new UnsupportedOperationException("the fake hypervisor has no networks");
  }

  @Override
  public void addLifecycleListener(DomainLifecycleListener listener) {
    listeners.add(listener);
  }

  @Override
  public void removeLifecycleListener(DomainLifecycleListener listener) {
    listeners.remove(listener);
  }

  @Override
  public boolean isAlive() {
    return true;
  }

  @Override
  public void close() {}

  /** A fake domain: a description and a state. */
  public final class FakeDomain implements DomainHandle {
    private final DomainDescription description;
    private final List<String> snapshots = new CopyOnWriteArrayList<>();
    private volatile DomainStatus.Kind state = DomainStatus.Kind.SHUTOFF;
    private volatile boolean transientDomain;

    public FakeDomain(DomainDescription description) {
      this.description = description;
    }

    private void set(DomainStatus.Kind s, String event) {
      state = s;
      listeners.forEach(l -> l.onLifecycleEvent(name(), event));
    }

    private FakeDomain existing() {
      if (domains.get(name()) != this) {
        throw new NoSuchVmException("no domain " + name(), null);
      }
      return this;
    }

    @Override
    public String name() {
      return description.name();
    }

    @Override
    public String uuid() {
      return description.uuid();
    }

    @Override
    public DomainStatus status() {
      return domains.get(name()) == this
          ? DomainStatus.of(state)
          : DomainStatus.of(DomainStatus.Kind.NOT_FOUND);
    }

    @Override
    public void start() {
      existing().set(DomainStatus.Kind.RUNNING, "STARTED");
    }

    @Override
    public void requestShutdown() {
      stop("SHUTDOWN");
    }

    @Override
    public void destroy() {
      if (existing().state == DomainStatus.Kind.SHUTOFF) {
        throw new VmStateException("domain " + name() + " is not running");
      }
      stop("STOPPED");
    }

    private void stop(String event) {
      existing().set(DomainStatus.Kind.SHUTOFF, event);
      if (transientDomain) {
        domains.remove(name(), this);
      }
    }

    @Override
    public void undefine() {
      existing();
      domains.remove(name(), this);
    }

    @Override
    public void suspend() {
      existing().set(DomainStatus.Kind.PAUSED, "SUSPENDED");
    }

    @Override
    public void resume() {
      existing().set(DomainStatus.Kind.RUNNING, "RESUMED");
    }

    @Override
    public DomainDescription description() {
      return existing().description;
    }

    @Override
    public DomainDescription persistentDescription() {
      return existing().description;
    }

    @Override
    public String xml() {
      return "<domain><!-- fake --><name>" + name() + "</name></domain>";
    }

    @Override
    public void createSnapshot(String name, String description) {
      existing().snapshots.add(name);
    }

    @Override
    public List<String> snapshotNames() {
      return List.copyOf(existing().snapshots);
    }

    @Override
    public void revertToSnapshot(String name) {
      if (!existing().snapshots.contains(name)) {
        throw new SnapshotException("no snapshot " + name);
      }
    }

    @Override
    public void deleteSnapshot(String name) {
      existing().snapshots.remove(name);
    }

    @Override
    public void saveMemory(Path file) {
      throw new UnsupportedOperationException("the fake hypervisor keeps no memory images");
    }

    /** What {@link #stats()} answers; tests set it. */
    public volatile dev.agentvm.core.VmStats stats =
        new dev.agentvm.core.VmStats(java.time.Duration.ZERO, 0);

    @Override
    public dev.agentvm.core.VmStats stats() {
      existing();
      return stats;
    }

    @Override
    public AgentTransport.Connection openChannel(String channelName) throws IOException {
      throw new IOException("the fake hypervisor has no channels");
    }

    @Override
    public AgentTransport.Connection openConsole() throws IOException {
      throw new IOException("the fake hypervisor has no console");
    }
  }
}
