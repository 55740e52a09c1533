package dev.agentvm.execution.sandbox;

import dev.agentvm.core.HostSet;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.NoHostAvailableException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The sandboxes of a {@link HostSet}: each new sandbox goes to the host the set places it on (one
 * where a sandbox of its shape waits ready ({@link Sandboxes#keepReady} on {@link #on}), else the
 * best placed by {@link HostSet}'s rule, passing over hosts that are down or hang) and stays there
 * for its life, pause and resume included, since its disk and memory are there. Each host's
 * sandboxes are a {@link Sandboxes} of their own ({@link Sandboxes#open(LibvirtConnection)}: this
 * machine's under {@code <state>/sandboxes}, a remote host's under {@code .hosts/<hash>}), opened
 * on first use. Thread-safe. {@link #close()} closes those, not the host set.
 */
public final class SandboxHosts implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(SandboxHosts.class);

  private final HostSet hosts;
  private final Function<LibvirtConnection, Sandboxes> opener;
  private final Map<String, Sandboxes> byUri = new ConcurrentHashMap<>();
  private volatile boolean closed;

  private SandboxHosts(HostSet hosts, Function<LibvirtConnection, Sandboxes> opener) {
    this.hosts = hosts;
    this.opener = opener;
  }

  /** The sandboxes of {@code hosts}, each host's in its default place. */
  public static SandboxHosts open(HostSet hosts) {
    return new SandboxHosts(java.util.Objects.requireNonNull(hosts, "hosts"), Sandboxes::open);
  }

  /** Like {@link #open(HostSet)}, each host's {@link Sandboxes} opened by {@code opener}. */
  public static SandboxHosts open(HostSet hosts, Function<LibvirtConnection, Sandboxes> opener) {
    return new SandboxHosts(
        java.util.Objects.requireNonNull(hosts, "hosts"),
        java.util.Objects.requireNonNull(opener, "opener"));
  }

  /**
   * Creates a sandbox on the host {@link HostSet} places it on; see {@link
   * Sandboxes#create(SandboxSpec)}.
   */
  public Sandbox create(SandboxSpec spec) {
    return create(spec, Map.of());
  }

  /**
   * Creates a sandbox on a host that carries every label of {@code selector}. A host whose
   * connection fails meanwhile is marked down and the next is tried.
   *
   * @throws NoHostAvailableException if no host is eligible, naming each host and why
   * @throws SandboxException if the sandbox could not be made for another reason
   */
  public Sandbox create(SandboxSpec spec, Map<String, String> selector) {
    requireOpen();
    if (spec.attachedDisk() != null) {
      // the disk is a file of this machine, which a remote host cannot use
      throw new IllegalArgumentException(
          "a sandbox with an attached disk runs on this machine's libvirt: use Sandboxes.open(conn)");
    }
    return hosts.onHost(
        "sandbox " + spec.namePrefix() + "*",
        spec.resources(),
        selector,
        c -> readyOn(c, spec),
        imageFiles(spec),
        c -> sandboxesOf(c).create(spec));
  }

  /** The image files of {@code spec} as any host's {@link Sandboxes} knows them; see there. */
  private List<Path> imageFiles(SandboxSpec spec) {
    for (Sandboxes s : byUri.values()) {
      List<Path> files = s.imageFilesIfKnown(spec);
      if (!files.isEmpty()) {
        return files;
      }
    }
    return List.of();
  }

  /**
   * The sandbox {@code id} on whichever host holds it (see {@link Sandboxes#connect}); hosts that
   * cannot be reached now are skipped.
   *
   * @throws NoSuchSandboxException if no reachable host has it
   */
  public Sandbox connect(String id) {
    requireOpen();
    for (Sandboxes s : reachable()) {
      try {
        return s.connect(id);
      } catch (NoSuchSandboxException e) {
        // another host's
      }
    }
    throw new NoSuchSandboxException(id);
  }

  /** The sandboxes of every host that can be reached now, by id. */
  public List<SandboxInfo> list() {
    requireOpen();
    List<SandboxInfo> out = new ArrayList<>();
    for (Sandboxes s : reachable()) {
      out.addAll(s.list());
    }
    out.sort(Comparator.comparing(SandboxInfo::id));
    return out;
  }

  /** The URI of the host that holds sandbox {@code id}, among the hosts opened so far. */
  public Optional<String> hostOf(String id) {
    for (Map.Entry<String, Sandboxes> e : byUri.entrySet()) {
      if (e.getValue().holds(id)) {
        return Optional.of(e.getKey());
      }
    }
    return Optional.empty();
  }

  /**
   * Reaps every host that can be reached now ({@link Sandboxes#reap}): after a host came back, what
   * a close could not remove while it was away goes. Returns how many sandboxes were removed.
   */
  public int reap() {
    requireOpen();
    int n = 0;
    for (Sandboxes s : reachable()) {
      try {
        n += s.reap(java.time.Instant.now());
      } catch (RuntimeException e) {
        // one host's failure holds up no other's reaping
        LOG.warn("reaping the sandboxes of {} failed: {}", s.connection().uri(), e.toString());
      }
    }
    return n;
  }

  /** The {@link Sandboxes} of one host of the set, opened on first use. */
  public Sandboxes on(String uri) {
    requireOpen();
    for (HostSet.HostStatus h : hosts.hosts()) {
      if (h.uri().equals(uri)) {
        Optional<LibvirtConnection> c = hosts.connection(uri);
        if (c.isEmpty()) {
          throw new NoHostAvailableException("host " + uri + " is not connected now");
        }
        return sandboxesOf(c.get());
      }
    }
    throw new IllegalArgumentException("not a host of this set: " + uri);
  }

  private List<Sandboxes> reachable() {
    List<Sandboxes> out = new ArrayList<>();
    for (HostSet.HostStatus h : hosts.hosts()) {
      if (!h.up()) {
        continue;
      }
      Optional<LibvirtConnection> c = hosts.connection(h.uri());
      if (c.isPresent()) {
        try {
          out.add(sandboxesOf(c.get()));
        } catch (RuntimeException e) {
          LOG.warn("skipping the sandboxes of {}: {}", h.uri(), e.toString());
        }
      }
    }
    return out;
  }

  /**
   * Whether a sandbox of {@code spec}'s shape waits ready on that host. Asked while the host set is
   * locked: opens nothing, builds nothing, calls no host.
   */
  private boolean readyOn(LibvirtConnection c, SandboxSpec spec) {
    Sandboxes s = byUri.get(c.uri());
    return s != null && s.readyCountIfKnown(spec) > 0;
  }

  private final Map<String, Object> opening = new ConcurrentHashMap<>();

  /**
   * The host's {@link Sandboxes}, opened once. Opening reaps (calls to the host), so it runs
   * outside the map, under a lock of that host's only.
   */
  private Sandboxes sandboxesOf(LibvirtConnection c) {
    String uri = c.uri();
    Sandboxes known = byUri.get(uri);
    if (known != null) {
      return known;
    }
    synchronized (opening.computeIfAbsent(uri, u -> new Object())) {
      known = byUri.get(uri);
      if (known != null) {
        return known;
      }
      requireOpen();
      Sandboxes s = opener.apply(c);
      byUri.put(uri, s);
      if (closed) { // close() went through the map meanwhile
        byUri.remove(uri, s);
        s.close();
        throw new IllegalStateException("closed");
      }
      return s;
    }
  }

  private void requireOpen() {
    if (closed) {
      throw new IllegalStateException("closed");
    }
  }

  /**
   * Closes every host's {@link Sandboxes} (their running sandboxes; paused ones stay), not the host
   * set.
   */
  @Override
  public void close() {
    closed = true;
    RuntimeException failure = null;
    for (Sandboxes s : byUri.values()) {
      try {
        s.close();
      } catch (RuntimeException e) {
        if (failure == null) {
          failure = e;
        } else {
          failure.addSuppressed(e);
        }
      }
    }
    byUri.clear();
    if (failure != null) {
      throw failure;
    }
  }
}
