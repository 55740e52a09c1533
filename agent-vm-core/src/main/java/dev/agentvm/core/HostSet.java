package dev.agentvm.core;

import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Threads;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Several libvirt hosts behind one placement decision (docs/scale-out.md).
 *
 * <p>Each host is watched on a thread of its own: connected, then asked for its {@link
 * HostCapacity} every {@link Builder#refreshEvery refresh period}. A host whose connection or
 * capacity call fails, or whose call has gone unanswered for {@link Builder#answerWithin longer
 * than it may take}, is down: placement passes over it, and it is tried again after a backoff that
 * doubles from {@link Builder#backoff first to max}; when it answers, it is up again. Placement
 * only reads what the watchers last saw and never calls a host, so a host that hangs delays no
 * placement on the others.
 *
 * <p>A VM goes to a host that is up, carries the labels asked for, and keeps {@link
 * Builder#reserveBytes the reserve} after the VM both of its available memory and of its memory not
 * yet committed to VMs made through this set; among those, to one the caller prefers ({@link
 * #onHost(String, ResourceProfile, Map, java.util.function.Predicate, Function)}: where a ready
 * sandbox waits), then to the one with the most CPUs per active domain, times its weight (ties:
 * more memory available, then the order hosts were given in); a host that would first have to
 * receive the VM's files ({@link LibvirtConnection#hasFiles}) counts one domain more. A placement
 * counts against its host, as a domain and as memory, for 10 s, so that a burst spreads before the
 * host's own numbers show it.
 */
public final class HostSet implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(HostSet.class);

  /** How long a placement counts against its host beyond what the host reports. */
  static final long PENDING_NANOS = 10_000_000_000L;

  /** A host given to the set; every field but the finals is guarded by the set. */
  private static final class Host {
    final String uri;
    final int weight;
    final Map<String, String> labels;
    final ScheduledExecutorService watcher;
    @Nullable LibvirtConnection conn;
    @Nullable HostCapacity capacity;
    boolean up;
    boolean probed;
    int failures;
    @Nullable String lastError;
    Instant since = Instant.now();
    boolean inCall; // a check is under way
    long callStarted; // its System.nanoTime()
    int generation; // a watch scheduled under an older generation does nothing
    final List<long[]> pending = new ArrayList<>(); // {nanoTime of the placement, memory bytes}

    Host(String uri, int weight, Map<String, String> labels) {
      this.uri = uri;
      this.weight = weight;
      this.labels = labels;
      this.watcher =
          Executors.newSingleThreadScheduledExecutor(
              Threads.namedDaemons("agentvm-host-" + LogText.clean(uri)));
    }

    long pendingBytes(long now) {
      pending.removeIf(p -> now - p[0] > PENDING_NANOS);
      long sum = 0;
      for (long[] p : pending) {
        sum += p[1];
      }
      return sum;
    }

    boolean matches(Map<String, String> selector) {
      return labels.entrySet().containsAll(selector.entrySet());
    }
  }

  /**
   * One host as the set last saw it.
   *
   * @param uri the host's libvirt URI
   * @param weight its weight in placement
   * @param labels its labels, for {@link #place(VMTemplate, Map)}
   * @param up whether its last check answered and none has gone unanswered too long since
   * @param capacity what it reported last, if it ever did
   * @param pendingPlacements recent placements its numbers may not show yet
   * @param lastError why it is down, if it is
   * @param since when it went up or down
   */
  public record HostStatus(
      String uri,
      int weight,
      Map<String, String> labels,
      boolean up,
      Optional<HostCapacity> capacity,
      int pendingPlacements,
      Optional<String> lastError,
      Instant since) {
    /** Copies the labels. */
    public HostStatus {
      labels = Map.copyOf(labels);
    }
  }

  private final List<Host> hosts;
  private final Duration refresh;
  private final Duration answerWithin;
  private final Duration firstBackoff;
  private final Duration maxBackoff;
  private final long reserveBytes;
  private final Duration placeWait;
  private final Function<String, LibvirtConnection> opener;
  private boolean closed; // guarded by this

  private HostSet(Builder b) {
    this.refresh = b.refresh;
    this.answerWithin =
        b.answerWithin != null
            ? b.answerWithin
            : max(refresh.multipliedBy(3), Duration.ofSeconds(5));
    this.firstBackoff = b.firstBackoff;
    this.maxBackoff = b.maxBackoff;
    this.reserveBytes = b.reserveBytes;
    this.placeWait = b.placeWait;
    this.opener = b.opener;
    List<Host> list = new ArrayList<>();
    for (Map.Entry<String, Map.Entry<Integer, Map<String, String>>> e : b.hosts.entrySet()) {
      list.add(new Host(e.getKey(), e.getValue().getKey(), e.getValue().getValue()));
    }
    this.hosts = List.copyOf(list);
    for (Host h : hosts) {
      h.watcher.execute(() -> watch(h, 0));
    }
  }

  private static Duration max(Duration a, Duration b) {
    return a.compareTo(b) >= 0 ? a : b;
  }

  /** A new builder; at least one host must be added. */
  public static Builder builder() {
    return new Builder();
  }

  /** Builds a {@link HostSet}. */
  public static final class Builder {
    private static final Duration LONGEST = Duration.ofHours(1);
    private final Map<String, Map.Entry<Integer, Map<String, String>>> hosts =
        new LinkedHashMap<>();
    private Duration refresh = Duration.ofSeconds(2);
    private @Nullable Duration answerWithin;
    private Duration firstBackoff = Duration.ofSeconds(1);
    private Duration maxBackoff = Duration.ofSeconds(60);
    private long reserveBytes = 512L << 20;
    private Duration placeWait = Duration.ofSeconds(15);
    private Function<String, LibvirtConnection> opener =
        uri -> LibvirtConnection.open(uri, Duration.ZERO);

    private Builder() {}

    /** Adds a host of weight 1 without labels. */
    public Builder host(String uri) {
      return host(uri, 1, Map.of());
    }

    /** Adds a host; a weight of 2 takes about twice the VMs of an equal host of weight 1. */
    public Builder host(String uri, int weight, Map<String, String> labels) {
      Objects.requireNonNull(uri, "uri");
      if (weight < 1 || weight > 1000) {
        throw new IllegalArgumentException("weight must be 1 to 1000, was " + weight);
      }
      if (hosts.containsKey(uri)) {
        throw new IllegalArgumentException("host given twice: " + LogText.clean(uri));
      }
      hosts.put(uri, Map.entry(weight, Map.copyOf(labels)));
      return this;
    }

    private static Duration within(String what, Duration d, Duration least) {
      if (d.compareTo(least) < 0 || d.compareTo(LONGEST) > 0) {
        throw new IllegalArgumentException(
            what + " must be from " + least.toMillis() + " ms to 1 h, was " + d);
      }
      return d;
    }

    /** How often each host is asked for its capacity (default 2 s). */
    public Builder refreshEvery(Duration period) {
      this.refresh = within("refresh period", period, Duration.ofMillis(100));
      return this;
    }

    /**
     * How long a host's check may go unanswered before the host counts as down (default: three
     * refresh periods, at least 5 s). Without it a host whose daemon hangs would keep its last
     * numbers, and its placements, until libvirt's keepalive gave up on it (about 18 s for a remote
     * host; never for a local one).
     */
    public Builder answerWithin(Duration limit) {
      this.answerWithin = within("answer limit", limit, Duration.ofMillis(100));
      return this;
    }

    /** The wait before a down host is tried again: {@code first}, doubling up to {@code max}. */
    public Builder backoff(Duration first, Duration max) {
      within("first backoff", first, Duration.ofMillis(10));
      within("longest backoff", max, first);
      this.firstBackoff = first;
      this.maxBackoff = max;
      return this;
    }

    /** Memory every host keeps beside the VMs placed on it (default 512 MiB). */
    public Builder reserveBytes(long bytes) {
      if (bytes < 0) {
        throw new IllegalArgumentException("negative reserve: " + bytes);
      }
      this.reserveBytes = bytes;
      return this;
    }

    /**
     * How long a placement waits for a host to become eligible (default 15 s): hosts are checked in
     * the background, and right after {@link #build()} none has answered yet.
     */
    public Builder placeWait(Duration wait) {
      this.placeWait = within("placement wait", wait, Duration.ZERO);
      return this;
    }

    /** How a host's connection is opened (tests give a fake hypervisor). */
    Builder opener(Function<String, LibvirtConnection> opener) {
      this.opener = Objects.requireNonNull(opener, "opener");
      return this;
    }

    /** Starts watching every host; returns at once. */
    public HostSet build() {
      if (hosts.isEmpty()) {
        throw new IllegalArgumentException("a host set needs at least one host");
      }
      return new HostSet(this);
    }
  }

  /** One check of {@code h}: connect if need be, read its capacity, schedule the next. */
  private void watch(Host h, int generation) {
    LibvirtConnection c;
    synchronized (this) {
      if (closed || generation != h.generation) {
        return;
      }
      c = h.conn;
      h.inCall = true;
      h.callStarted = System.nanoTime();
    }
    Duration next = refresh;
    try {
      // a connection once made is kept for the set's life: the VMs defined through it hold it,
      // and its session reconnects by itself when the host answers again
      if (c == null) {
        c = opener.apply(h.uri);
        synchronized (this) {
          if (closed) {
            return; // the finally below closes it
          }
          h.conn = c;
        }
      }
      HostCapacity cap = c.capacity();
      synchronized (this) {
        if (!closed && generation == h.generation) {
          h.capacity = cap;
          h.failures = 0;
          h.lastError = null;
          h.probed = true;
          if (!h.up) {
            h.up = true;
            h.since = Instant.now();
            LOG.info("host {} is up: {}", LogText.clean(h.uri), cap);
          }
          notifyAll();
        }
      }
    } catch (RuntimeException | Error e) { // an Error too: the watch must go on
      next = down(h, generation, e);
      if (e instanceof Error) {
        LOG.error("checking host {} failed", LogText.clean(h.uri), e);
      }
    } finally {
      LibvirtConnection orphan = null;
      synchronized (this) {
        h.inCall = false;
        if (closed && h.conn == null && c != null) {
          orphan = c; // made or used while the set closed: this thread closes it
        }
      }
      if (orphan != null) {
        closeQuietly(orphan);
      } else {
        schedule(h, generation, next);
      }
    }
  }

  /** Marks {@code h} down; returns how long until it is tried again. */
  private synchronized Duration down(Host h, int generation, Throwable e) {
    if (closed || generation != h.generation) {
      return maxBackoff; // a newer watch or close decides
    }
    h.failures++;
    h.lastError = LogText.clean(String.valueOf(e.getMessage()));
    h.probed = true;
    boolean was = h.up;
    if (h.up) {
      h.up = false;
      h.since = Instant.now();
    }
    long ms = backoffMillis(h.failures);
    if (was) {
      LOG.warn(
          "host {} is down ({}); trying it again in {} ms, then less often",
          LogText.clean(h.uri),
          h.lastError,
          ms);
    } else {
      LOG.debug(
          "host {} still down ({}); next try in {} ms", LogText.clean(h.uri), h.lastError, ms);
    }
    notifyAll();
    return Duration.ofMillis(ms);
  }

  private long backoffMillis(int failures) {
    long first = firstBackoff.toMillis();
    long max = maxBackoff.toMillis();
    int shift = Math.min(30, Math.max(0, failures - 1));
    return first > (max >> shift) ? max : Math.min(max, first << shift);
  }

  // FutureReturnValueIgnored: watch() catches what it fails with; the future holds nothing more
  @SuppressWarnings("FutureReturnValueIgnored")
  private void schedule(Host h, int generation, Duration delay) {
    synchronized (this) {
      if (closed || generation != h.generation) {
        return;
      }
    }
    try {
      h.watcher.schedule(() -> watch(h, generation), delay.toMillis(), TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closed meanwhile
    }
  }

  /** Whether {@code h} counts as up now: its last check answered and none is overdue. */
  private boolean isUp(Host h, long now) {
    return h.up && (!h.inCall || now - h.callStarted <= answerWithin.toNanos());
  }

  private @Nullable String overdue(Host h, long now) {
    if (h.up && !isUp(h, now)) {
      return LogText.clean(h.uri)
          + " has not answered for "
          + (now - h.callStarted) / 1_000_000
          + " ms (limit "
          + answerWithin.toMillis()
          + " ms)";
    }
    return null;
  }

  /** Every host as last seen, in the order given. */
  public synchronized List<HostStatus> hosts() {
    long now = System.nanoTime();
    List<HostStatus> out = new ArrayList<>();
    for (Host h : hosts) {
      String overdue = overdue(h, now);
      h.pendingBytes(now);
      out.add(
          new HostStatus(
              h.uri,
              h.weight,
              h.labels,
              isUp(h, now),
              Optional.ofNullable(h.capacity),
              h.pending.size(),
              Optional.ofNullable(overdue != null ? overdue : h.lastError),
              h.since));
    }
    return out;
  }

  /**
   * The connection of the host {@code template}'s VM should go to, counted against that host; see
   * the class description.
   *
   * @throws NoHostAvailableException when no host is eligible within the placement wait, naming
   *     each host and why
   */
  public LibvirtConnection place(VMTemplate template) {
    return place(template, Map.of());
  }

  /**
   * Like {@link #place(VMTemplate)}, among the hosts that carry every label of {@code selector}.
   */
  public LibvirtConnection place(VMTemplate template, Map<String, String> selector) {
    List<Path> files = LibvirtConnection.filesOf(template);
    return place(
        template.name(),
        template.resources(),
        selector,
        c -> false,
        c -> c.hasFiles(files),
        Set.of());
  }

  private synchronized LibvirtConnection place(
      String what,
      ResourceProfile resources,
      Map<String, String> selector,
      java.util.function.Predicate<LibvirtConnection> prefer,
      java.util.function.Predicate<LibvirtConnection> hasFiles,
      Set<String> excluded) {
    long need = (long) resources.memoryMiB() << 20;
    long end = System.nanoTime() + placeWait.toNanos();
    while (true) {
      if (closed) {
        throw new IllegalStateException("host set closed");
      }
      long now = System.nanoTime();
      Host best = null;
      long bestRoom = -1;
      boolean bestPreferred = false;
      boolean bestHasFiles = false;
      for (Host h : hosts) {
        LibvirtConnection c = h.conn;
        if (!isUp(h, now) || h.capacity == null || c == null) {
          continue;
        }
        if (excluded.contains(h.uri) || !h.matches(selector)) {
          continue;
        }
        long room = room(h, c, now);
        if (room < need) {
          continue; // also where one waits ready: the caller may not get it (others take it)
        }
        boolean preferred = preferred(prefer, c);
        boolean files = preferred(hasFiles, c);
        int better =
            best == null
                ? 1
                : preferred != bestPreferred
                    ? (preferred ? 1 : -1)
                    : compareScores(h, files, best, bestHasFiles);
        if (better > 0 || (better == 0 && room > bestRoom)) {
          best = h;
          bestRoom = room;
          bestPreferred = preferred;
          bestHasFiles = files;
        }
      }
      if (best != null) {
        best.pending.add(new long[] {now, need});
        LOG.debug("placing {} on {}", LogText.clean(what), LogText.clean(best.uri));
        return Objects.requireNonNull(best.conn);
      }
      long left = end - now;
      if (left <= 0 || !worthWaiting(selector, excluded, now)) {
        throw new NoHostAvailableException(why(need, selector, excluded, now));
      }
      try {
        wait(Math.max(1, Math.min(left / 1_000_000, 200)));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new NoHostAvailableException("interrupted waiting for a host");
      }
    }
  }

  /** A preference that throws counts as none: placement must not fail on a hint. */
  private static boolean preferred(
      java.util.function.Predicate<LibvirtConnection> prefer, LibvirtConnection c) {
    try {
      return prefer.test(c);
    } catch (RuntimeException e) {
      LOG.debug("placement preference failed for {}: {}", LogText.clean(c.uri()), e.toString());
      return false;
    }
  }

  /** Memory {@code h} has for one more VM: the smaller of what it reports and what is committed. */
  private long room(Host h, LibvirtConnection c, long now) {
    HostCapacity cap = Objects.requireNonNull(h.capacity);
    long pending = h.pendingBytes(now);
    long available = cap.availableBytes() - pending - reserveBytes;
    // a placed VM counts in held memory only once defined: until then its pending entry does (it
    // may count twice for a moment, which errs on the safe side)
    long uncommitted = cap.totalBytes() - c.heldMemoryBytes() - pending - reserveBytes;
    return Math.min(available, uncommitted);
  }

  /**
   * Compares weight x CPUs / (1 + active domains + pending placements) of two hosts, exactly (by
   * cross-multiplying), so that equal hosts tie. A host that would first have to receive the VM's
   * files counts one domain more: it wins a tie no longer, yet a host that has them takes only
   * about one VM more before the others get theirs (and their files).
   */
  private static int compareScores(Host a, boolean aHasFiles, Host b, boolean bHasFiles) {
    HostCapacity ca = Objects.requireNonNull(a.capacity);
    HostCapacity cb = Objects.requireNonNull(b.capacity);
    long aLoad = 1L + ca.activeDomains() + a.pending.size() + (aHasFiles ? 0 : 1);
    long bLoad = 1L + cb.activeDomains() + b.pending.size() + (bHasFiles ? 0 : 1);
    return Long.compare((long) a.weight * ca.cpus() * bLoad, (long) b.weight * cb.cpus() * aLoad);
  }

  /**
   * Whether a matching host may still become eligible: one not reached yet or down (it may come
   * back within the wait). When every matching host is up, memory rules them out, and waiting for
   * memory is not what a placement should do.
   */
  private boolean worthWaiting(Map<String, String> selector, Set<String> excluded, long now) {
    for (Host h : hosts) {
      if (!excluded.contains(h.uri) && h.matches(selector) && !isUp(h, now)) {
        return true;
      }
    }
    return false;
  }

  private String why(long need, Map<String, String> selector, Set<String> excluded, long now) {
    StringBuilder s =
        new StringBuilder("no host can take a VM of ").append(need >> 20).append(" MiB:");
    for (Host h : hosts) {
      s.append("\n  ").append(LogText.clean(h.uri)).append(": ");
      LibvirtConnection c = h.conn;
      String overdue = overdue(h, now);
      if (excluded.contains(h.uri)) {
        s.append("failed this placement");
      } else if (!h.matches(selector)) {
        s.append("labels ").append(h.labels).append(" do not match ").append(selector);
      } else if (!h.probed) {
        s.append("not reached yet");
      } else if (overdue != null) {
        s.append(overdue);
      } else if (!h.up || c == null) {
        s.append("down since ").append(h.since).append(" (").append(h.lastError).append(')');
      } else if (h.capacity != null) {
        s.append(Math.max(0, room(h, c, now) + reserveBytes) >> 20)
            .append(" MiB available, ")
            .append(reserveBytes >> 20)
            .append(" MiB kept in reserve");
      }
    }
    return s.toString();
  }

  /**
   * Places {@code template} and defines its VM there. A host whose connection fails while doing so
   * is marked down and the next eligible host is tried, each host once.
   */
  public VM define(VMTemplate template) {
    return define(template, Map.of());
  }

  /**
   * Like {@link #define(VMTemplate)}, among the hosts that carry every label of {@code selector}.
   */
  public VM define(VMTemplate template, Map<String, String> selector) {
    return onHost(
        template.name(),
        template.resources(),
        selector,
        c -> false,
        LibvirtConnection.filesOf(template),
        c -> c.define(template));
  }

  /**
   * Places a machine of {@code resources} among the hosts that carry every label of {@code
   * selector} and makes it there with {@code make} (a sandbox, a VM). When the host's connection
   * fails while it is made ({@code make} threw a {@link ConnectionException}, or an exception
   * caused by one), the host is marked down and the next eligible host is tried, each host once.
   *
   * @param what names the machine in logs
   * @throws NoHostAvailableException when no eligible host is left
   */
  public <T> T onHost(
      String what,
      ResourceProfile resources,
      Map<String, String> selector,
      Function<LibvirtConnection, T> make) {
    return onHost(what, resources, selector, c -> false, make);
  }

  /**
   * Like {@link #onHost(String, ResourceProfile, Map, Function)}, where eligible hosts for which
   * {@code prefer} holds (where a ready sandbox of the shape waits, say) come before all others.
   * They still need room and count the placement like any other: what waits there may be taken by
   * another caller first. It is asked while the set is locked: it must answer from what the caller
   * knows, without calling the host or blocking.
   */
  public <T> T onHost(
      String what,
      ResourceProfile resources,
      Map<String, String> selector,
      java.util.function.Predicate<LibvirtConnection> prefer,
      Function<LibvirtConnection, T> make) {
    return onHost(what, resources, selector, prefer, List.of(), make);
  }

  /**
   * Like {@link #onHost(String, ResourceProfile, Map, java.util.function.Predicate, Function)},
   * where a host that would first have to receive {@code files} (the machine's boot images and
   * read-only disks; see {@link LibvirtConnection#hasFiles}) counts one active domain more.
   */
  public <T> T onHost(
      String what,
      ResourceProfile resources,
      Map<String, String> selector,
      java.util.function.Predicate<LibvirtConnection> prefer,
      java.util.Collection<Path> files,
      Function<LibvirtConnection, T> make) {
    List<Path> needed = List.copyOf(files);
    Set<String> failed = new HashSet<>();
    while (true) {
      LibvirtConnection c =
          place(what, resources, selector, prefer, x -> x.hasFiles(needed), failed);
      try {
        return make.apply(c);
      } catch (RuntimeException e) {
        ConnectionException lost = connectionFailure(e);
        if (lost == null) {
          throw e;
        }
        failed.add(c.uri());
        markDown(c.uri(), lost);
        LOG.warn(
            "making {} on {} failed ({}); trying another host",
            LogText.clean(what),
            LogText.clean(c.uri()),
            LogText.clean(String.valueOf(e.getMessage())));
      }
    }
  }

  /** The {@link ConnectionException} in {@code e}'s causes, if any: its host went away. */
  static @Nullable ConnectionException connectionFailure(Throwable e) {
    Throwable t = e;
    for (int depth = 0; t != null && depth < 16; depth++) {
      if (t instanceof ConnectionException c) {
        return c;
      }
      t = t.getCause();
    }
    return null;
  }

  /**
   * The connection of host {@code uri} once it was reached (kept while the host is down, so that
   * what was made through it stays usable); empty before.
   *
   * @throws IllegalArgumentException if {@code uri} is not a host of this set
   */
  public synchronized Optional<LibvirtConnection> connection(String uri) {
    for (Host h : hosts) {
      if (h.uri.equals(uri)) {
        return closed ? Optional.empty() : Optional.ofNullable(h.conn);
      }
    }
    throw new IllegalArgumentException("not a host of this set: " + LogText.clean(uri));
  }

  /**
   * Marks a host down now (a caller saw its connection fail), rather than at its next check; it is
   * tried again after the backoff.
   */
  public void markDown(String uri, RuntimeException cause) {
    Objects.requireNonNull(cause, "cause");
    for (Host h : hosts) {
      if (h.uri.equals(uri)) {
        int generation;
        Duration next;
        synchronized (this) {
          if (closed || !h.up) {
            return;
          }
          generation = ++h.generation; // the check under way and the one scheduled do nothing now
          try {
            next = down(h, generation, cause);
          } catch (RuntimeException e) {
            next = firstBackoff; // the new generation must be scheduled whatever happened
          }
        }
        schedule(h, generation, next);
        return;
      }
    }
    throw new IllegalArgumentException("not a host of this set: " + LogText.clean(uri));
  }

  /**
   * Stops watching and closes every host's connection; one that a check is still using is closed by
   * that check when its call returns. Close the VMs placed through the set first: a VM whose
   * connection is closed can no longer be stopped through it.
   */
  @Override
  public void close() {
    List<LibvirtConnection> conns = new ArrayList<>();
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      for (Host h : hosts) {
        LibvirtConnection c = h.conn;
        h.conn = null;
        // a watcher in a call still uses its connection: it closes it itself when the call ends
        if (c != null && !h.inCall) {
          conns.add(c);
        }
      }
      notifyAll();
    }
    for (Host h : hosts) {
      h.watcher.shutdownNow();
    }
    RuntimeException failure = null;
    for (LibvirtConnection c : conns) {
      if (c.heldVms() > 0) {
        LOG.warn(
            "closing the host set with {} VMs on {} still open: close them first",
            c.heldVms(),
            LogText.clean(c.uri()));
      }
      try {
        c.close();
      } catch (RuntimeException e) {
        if (failure == null) {
          failure = e;
        } else {
          failure.addSuppressed(e);
        }
      }
    }
    if (failure != null) {
      throw failure;
    }
  }

  private static void closeQuietly(LibvirtConnection c) {
    try {
      c.close();
    } catch (RuntimeException e) {
      LOG.debug("closing the connection to {} failed: {}", LogText.clean(c.uri()), e.toString());
    }
  }
}
