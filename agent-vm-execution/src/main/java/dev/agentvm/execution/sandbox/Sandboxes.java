package dev.agentvm.execution.sandbox;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.NoSuchVmException;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.execution.internal.AgentVmMeter;
import dev.agentvm.execution.internal.Meters;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.image.Progress;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.FileLocks;
import dev.agentvm.internal.LogContext;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.internal.Trees;
import dev.agentvm.network.egress.EgressCa;
import dev.agentvm.network.egress.EgressLimits;
import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressProxy;
import dev.agentvm.network.egress.EgressRecord;
import dev.agentvm.network.egress.EgressResolver;
import dev.agentvm.storage.GuestIdentity;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.SSLContext;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The sandboxes of one host: creates them, finds them again (also those another process created or
 * paused), and reaps what nobody can use any more.
 *
 * <pre>{@code
 * try (LibvirtConnection conn = LibvirtConnection.open();
 *     Sandboxes sandboxes = Sandboxes.open(conn);
 *     Sandbox sb = sandboxes.create()) {
 *   sb.files().write("/workspace/hello.py", "print('hi')".getBytes(UTF_8));
 *   ExecResult r = sb.exec(ExecRequest.command("sh", "-c", "echo hi"));
 * }
 * }</pre>
 *
 * <p>Each sandbox lives in {@code <state>/sandboxes/<id>/} (its record, its workspace disk's top
 * overlay, its paused memory and its checkpoints); read-only disk layers that checkpoints and forks
 * share are in {@code <state>/sandboxes/.layers/}. Opening reaps: sandboxes whose owning process
 * died while they ran (their VMs are gone or are stopped now), and paused sandboxes whose retention
 * ended. Thread-safe. {@link #close()} closes the running sandboxes this object handed out; paused
 * ones stay for another process.
 *
 * <p>Metrics: a Micrometer {@link MeterBinder}; once bound to a registry ({@link #bindTo}), the
 * phases of its sandboxes are timed there: create (boot or warm-image restore), pause, resume,
 * checkpoint, rollback and fork ({@code agentvm.sandbox.*}, docs/observability.md).
 */
// "try": the MDC scopes are try-with-resources blocks whose variable is unused by design
@SuppressWarnings("try")
public final class Sandboxes implements AutoCloseable, MeterBinder {
  private static final Logger LOG = LoggerFactory.getLogger(Sandboxes.class);
  private static final SecureRandom RANDOM = new SecureRandom();
  private final LibvirtConnection conn;
  private final Path root;
  private final Path lockFile;
  private final Layers layers;
  private final WarmImages warm;
  private final SandboxDisks disks;
  private final Map<String, Sandbox> handedOut = new ConcurrentHashMap<>();
  private final Meters meters = new Meters(Tags.empty(), "sandboxes");
  private @Nullable MicroImage defaultImage;
  private volatile long memoryBudgetMiB = Long.MAX_VALUE;
  private volatile EgressResolver egressResolver = EgressResolver.SYSTEM;
  private volatile EgressLimits egressLimits = EgressLimits.defaults();
  private volatile java.util.function.Consumer<EgressRecord> egressListener = r -> {};
  private volatile @Nullable SSLContext egressUpstreamTls;
  private final Object egressCaLock = new Object();
  private @Nullable EgressCa egressCa; // guarded by egressCaLock; made on first use
  private java.util.concurrent.@Nullable ScheduledFuture<?> ticking;

  /** File work a call need not wait for (deleting a resumed sandbox's memory image). */
  private final java.util.concurrent.ExecutorService background =
      java.util.concurrent.Executors.newSingleThreadExecutor(
          dev.agentvm.internal.Threads.namedDaemons("agentvm-sandbox-files"));

  /** {@link #background}, or the caller's thread once these sandboxes are closed. */
  java.util.concurrent.Executor background() {
    return task -> {
      try {
        background.execute(task);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        task.run();
      }
    };
  }

  private final java.util.concurrent.ScheduledExecutorService timer =
      java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
          dev.agentvm.internal.Threads.namedDaemons("agentvm-sandbox-timer"));

  private Sandboxes(LibvirtConnection conn, Path root, @Nullable String hostTag) {
    this.conn = conn;
    this.root = root.toAbsolutePath();
    this.lockFile = this.root.resolve(".lock");
    this.layers = new Layers(this.root.resolve(".layers"));
    java.util.Optional<dev.agentvm.core.HostStorage> host = conn.hostStorage();
    this.disks =
        host.isPresent() && hostTag != null
            ? SandboxDisks.onHost(host.get(), hostTag, layers)
            : SandboxDisks.local(layers);
    this.warm = new WarmImages(this.root.resolve(".warm"), disks);
    meters.gauge(
        AgentVmMeter.SANDBOX_READY,
        Tags.empty(),
        this,
        s -> s.readyShapes.values().stream().mapToInt(r -> r.idle.size()).sum());
  }

  /**
   * The sandboxes under {@code <state>/sandboxes} (see {@link AgentVmPaths}); for a remote host,
   * under {@code <state>/sandboxes/.hosts/<hash of its URI>}.
   */
  public static Sandboxes open(LibvirtConnection conn) {
    return open(conn, defaultRoot(conn));
  }

  /**
   * Where {@link #open(LibvirtConnection)} keeps the records of {@code conn}'s sandboxes: {@code
   * <state>/sandboxes}, or for a remote host {@code <state>/sandboxes/.hosts/<hash of its URI>}.
   */
  public static Path defaultRoot(LibvirtConnection conn) {
    Path all = AgentVmPaths.stateRoot().resolve("sandboxes");
    if (conn.hostStorage().isEmpty()) {
      return all;
    }
    return AgentVmPaths.forHost(all, conn.uri());
  }

  /**
   * The sandboxes under {@code root}; reaps what is due there first. On a remote host ({@link
   * LibvirtConnection#hostStorage()}) the records stay under {@code root} and the disks and memory
   * images go into the host's pool: give each host a root of its own.
   */
  public static Sandboxes open(LibvirtConnection conn, Path root) {
    if (!conn.backend().isLocal() && conn.hostStorage().isEmpty()) {
      // a backend of another machine that keeps no files there: nowhere to put disks and memory
      throw new SandboxException(
          "sandboxes need files on their host; the backend for "
              + conn.uri()
              + " is remote and keeps none (HypervisorBackend.hostStorage)");
    }
    Path dir = root.toAbsolutePath();
    String tag;
    try {
      Files.createDirectories(dir);
      tag =
          FileLocks.withLock(
                  dir.resolve(".lock"), () -> java.util.Optional.ofNullable(hostOfRoot(dir, conn)))
              .orElse(null);
    } catch (IOException e) {
      throw new SandboxException("cannot prepare " + dir + ": " + e.getMessage(), e);
    }
    Sandboxes s = new Sandboxes(conn, dir, tag);
    s.reapedAtOpen = s.reap(Instant.now());
    // tick() catches everything it can throw, so the future never holds a failure
    s.ticking =
        s.timer.scheduleWithFixedDelay(s::tick, 1, 1, java.util.concurrent.TimeUnit.SECONDS);
    return s;
  }

  /**
   * Caps the memory of the running sandboxes this object handed out: before one is created or
   * resumed over the budget, the least recently used idle ones are paused to make room. Fails with
   * {@link SandboxException} when the room is held by sandboxes with calls in flight.
   */
  public Sandboxes memoryBudgetMiB(long budget) {
    if (budget < 1) {
      throw new IllegalArgumentException("budget must be positive, was " + budget);
    }
    this.memoryBudgetMiB = budget;
    return this;
  }

  /**
   * How the egress proxies of this object's sandboxes resolve names (default the JVM's resolver);
   * the policy checks every address it returns. Applies to proxies started afterwards.
   */
  public Sandboxes egressResolver(EgressResolver resolver) {
    this.egressResolver = java.util.Objects.requireNonNull(resolver, "resolver");
    return this;
  }

  /** The limits of each sandbox's egress (default {@link EgressLimits#defaults()}). */
  public Sandboxes egressLimits(EgressLimits limits) {
    this.egressLimits = java.util.Objects.requireNonNull(limits, "limits");
    return this;
  }

  /**
   * Hears the record of every egress connection of every sandbox when it ends (an audit trail);
   * called on a proxy thread, keep it quick.
   */
  public Sandboxes egressListener(java.util.function.Consumer<EgressRecord> listener) {
    this.egressListener = java.util.Objects.requireNonNull(listener, "listener");
    return this;
  }

  /**
   * The trust this host verifies servers with where a sandbox's secrets are put into its HTTPS
   * requests (default the JDK's {@code cacerts}).
   */
  public Sandboxes egressUpstreamTls(SSLContext context) {
    this.egressUpstreamTls = java.util.Objects.requireNonNull(context, "context");
    return this;
  }

  /**
   * The CA the sandboxes under this root trust for the HTTPS their secrets go into: kept in {@code
   * <root>/.egress-ca/} (its key readable by the owner only), made on first use.
   */
  public EgressCa egressCa() {
    synchronized (egressCaLock) {
      return egressCaLocked();
    }
  }

  private EgressCa egressCaLocked() {
    EgressCa ca = egressCa;
    if (ca == null) {
      try {
        // a lock of its own: proxies are made while the sandboxes' lock may be held
        ca =
            FileLocks.withLock(
                root.resolve(".egress-ca.lock"),
                () -> EgressCa.loadOrCreate(root.resolve(".egress-ca")));
      } catch (IOException e) {
        throw new SandboxException("cannot make the egress CA under " + root + ": " + e, e);
      }
      egressCa = ca;
    }
    return ca;
  }

  EgressProxy egressProxy(String sandboxId, EgressPolicy policy) {
    SSLContext upstream = egressUpstreamTls;
    EgressProxy.Builder b = EgressProxy.builder(policy);
    if (upstream != null) {
      b.upstreamTls(upstream);
    }
    return b.name(sandboxId)
        .resolver(egressResolver)
        .interception(this::egressCa)
        .limits(egressLimits)
        .listener(
            r -> {
              meters.increment(
                  AgentVmMeter.EGRESS_CONNECTIONS,
                  Tags.of("outcome", r.allowed() ? "allowed" : "denied")
                      .and("check", r.allowed() ? "none" : r.rule()));
              meters.add(
                  AgentVmMeter.EGRESS_BYTES, Tags.of("direction", "out"), (double) r.bytesOut());
              meters.add(
                  AgentVmMeter.EGRESS_BYTES, Tags.of("direction", "in"), (double) r.bytesIn());
              egressListener.accept(r);
            })
        .build();
  }

  /** Pauses idle running sandboxes (least recently used first) until {@code needMiB} fits. */
  void makeRoom(int needMiB, @Nullable Sandbox forWhom) {
    long budget = memoryBudgetMiB;
    if (budget == Long.MAX_VALUE) {
      return;
    }
    while (true) {
      List<Sandbox> running =
          handedOut.values().stream()
              .filter(sb -> sb != forWhom && sb.state() == SandboxState.RUNNING)
              .sorted(Comparator.comparingLong(Sandbox::lastUsedNanos))
              .toList();
      long used = running.stream().mapToLong(Sandbox::memoryMiB).sum();
      if (used + needMiB <= budget) {
        return;
      }
      boolean freed = false;
      for (Sandbox sb : running) {
        if (sb.pauseIfIdle("making room in the memory budget of " + budget + " MiB")) {
          freed = true;
          break;
        }
      }
      if (!freed) {
        throw new SandboxException(
            "the memory budget of "
                + budget
                + " MiB is held by "
                + running.size()
                + " sandboxes with calls in flight; "
                + needMiB
                + " MiB more do not fit");
      }
    }
  }

  /** Once a second: leases that ended, sandboxes idle for longer than their idle timeout. */
  private void tick() {
    Instant now = Instant.now();
    for (Sandbox sb : List.copyOf(handedOut.values())) {
      try {
        if (sb.state() != SandboxState.RUNNING) {
          continue;
        }
        java.util.Optional<Instant> end = sb.leaseEnd();
        if (end.isPresent() && now.isAfter(end.get())) {
          if (sb.onLeaseEnd() == SandboxSpec.LeaseEnd.CLOSE) {
            LOG.info("closing sandbox {}: its lease ended", sb.id());
            sb.close();
          } else {
            sb.pauseIfIdle("its lease ended");
          }
        } else if (!sb.idleTimeout().isZero() && sb.idleFor(sb.idleTimeout())) {
          sb.pauseIfIdle("idle for " + sb.idleTimeout().toSeconds() + " s");
        }
      } catch (RuntimeException e) {
        LOG.warn("sandbox {}: lease or idle handling failed: {}", sb.id(), e.toString());
      }
    }
  }

  /**
   * Times the phases of this object's sandboxes in {@code registry} too (Spring Boot binds beans of
   * this type by itself). Binding a registry twice does nothing.
   */
  @Override
  public void bindTo(MeterRegistry registry) {
    meters.bindTo(registry);
  }

  Meters meters() {
    return meters;
  }

  /** The directory holding this host's sandboxes (one directory each, and {@code .layers}). */
  public Path root() {
    return root;
  }

  LibvirtConnection connection() {
    return conn;
  }

  /** Creates and boots a sandbox with {@link SandboxSpec#defaults()}. */
  public Sandbox create() {
    return create(SandboxSpec.defaults());
  }

  /**
   * Creates a sandbox and waits until its guest agent answers.
   *
   * @throws SandboxException if it could not be made (nothing is left behind)
   */
  public Sandbox create(SandboxSpec spec) {
    // a ready sandbox has no attached disk: a spec with one always gets a sandbox of its own
    Sandbox ready = spec.attachedDisk() == null ? takeReady(spec) : null;
    return ready != null ? ready : makeOrBoot(spec, false);
  }

  /**
   * Keeps {@code count} sandboxes of {@code spec}'s shape (image, resources, workspace size, name
   * prefix) running and ready, so that {@link #create(SandboxSpec)} with that shape hands one out
   * at once instead of restoring or booting. They are made in the background (from a warm image
   * when the spec allows one, made first by {@link #warmUp}), each with its own identity, and made
   * again as they are taken. Labels, timeouts, the lease and the egress policy come from the spec
   * given to {@code create}. Ready sandboxes are not listed, are not counted in the memory budget,
   * and are closed by {@link #close()}. A count of 0 stops keeping that shape ready (and closes
   * those kept).
   */
  public Sandboxes keepReady(SandboxSpec spec, int count) {
    if (count < 0) {
      throw new IllegalArgumentException("count must be >= 0, was " + count);
    }
    if (spec.attachedDisk() != null) {
      throw new IllegalArgumentException(
          "sandboxes with an attached disk cannot be kept ready: each disk has one sandbox");
    }
    String key = readyKey(spec);
    ReadyShape shape = readyShapes.computeIfAbsent(key, k -> new ReadyShape(spec));
    shape.target = count;
    while (shape.idle.size() > count) {
      Sandbox extra = shape.idle.pollLast();
      if (extra != null) {
        closeQuietly(extra);
      }
    }
    fillReady();
    return this;
  }

  /** How many sandboxes of {@code spec}'s shape are ready to hand out now. */
  public int readyCount(SandboxSpec spec) {
    if (readyShapes.isEmpty()) {
      return 0; // and no image is built for the question
    }
    ReadyShape shape = readyShapes.get(readyKey(spec));
    return shape == null ? 0 : shape.idle.size();
  }

  /**
   * Like {@link #readyCount}, answered at once from what is known: 0 where that would need the
   * default image resolved first (it is, once a shape without an image of its own is kept ready).
   */
  int readyCountIfKnown(SandboxSpec spec) {
    if (readyShapes.isEmpty() || spec.attachedDisk() != null) {
      return 0;
    }
    MicroImage given = spec.image();
    MicroImage image = given != null ? given : knownDefaultImage;
    if (image == null) {
      return 0;
    }
    ReadyShape shape = readyShapes.get(readyKey(spec, image));
    return shape == null ? 0 : shape.idle.size();
  }

  /** Sandboxes kept ready for one shape. */
  private static final class ReadyShape {
    final SandboxSpec spec;
    final java.util.concurrent.ConcurrentLinkedDeque<Sandbox> idle =
        new java.util.concurrent.ConcurrentLinkedDeque<>();
    volatile int target;
    long failures; // only the filler thread touches it

    ReadyShape(SandboxSpec spec) {
      this.spec = spec;
    }
  }

  private final Map<String, ReadyShape> readyShapes = new ConcurrentHashMap<>();
  private volatile Progress progress = Progress.toLog();

  /**
   * Who hears how long work goes (default {@link Progress#toLog()}): building the default image,
   * capturing a warm image ({@value #WARM_STEPS} steps) and filling the ready sandboxes of a shape
   * (one step per sandbox).
   */
  public Sandboxes progress(Progress listener) {
    this.progress = java.util.Objects.requireNonNull(listener, "listener");
    return this;
  }

  /** Steps of a warm-image capture: booted, agent warmed, memory saved, kept. */
  static final int WARM_STEPS = 4;

  private void warmStep(String key, int done, String detail) {
    Progress.report(progress, new Progress.Step("warm image " + key, done, WARM_STEPS, detail));
  }

  static final String HOST_FILE = ".host";

  /**
   * Ties a root to one libvirt host: {@value #HOST_FILE} names the host of a remote root and the
   * tag its files carry in that host's pool (random, made once, so every process using the root
   * finds the same files). A local root has none. Returns the tag, null for a local root. The
   * caller holds the root's lock.
   *
   * @throws SandboxException if the root holds another host's sandboxes
   */
  private static @Nullable String hostOfRoot(Path root, LibvirtConnection conn) throws IOException {
    Path file = root.resolve(HOST_FILE);
    boolean remote = conn.hostStorage().isPresent();
    if (Files.exists(file)) {
      java.util.Properties p = new java.util.Properties();
      try (java.io.InputStream in = Files.newInputStream(file)) {
        p.load(in);
      }
      String uri = p.getProperty("uri", "");
      String tag = p.getProperty("tag", "");
      if (!uri.equals(conn.uri()) || !tag.matches("[0-9a-f]{12}")) {
        throw new SandboxException(
            root + " holds the sandboxes of " + uri + ", not of " + conn.uri());
      }
      return tag;
    }
    if (!remote) {
      return null;
    }
    if (!sandboxDirs(root).isEmpty()) {
      throw new SandboxException(
          root + " holds sandboxes of this machine's libvirt, not of " + conn.uri());
    }
    String tag = HexFormat.of().formatHex(randomBytes(6));
    java.util.Properties p = new java.util.Properties();
    p.setProperty("uri", conn.uri());
    p.setProperty("tag", tag);
    Path tmp = root.resolve(HOST_FILE + ".tmp");
    try (java.io.OutputStream out = Files.newOutputStream(tmp)) {
      p.store(out, "agent-vm: the libvirt host of these sandboxes");
    }
    Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    return tag;
  }

  private int reapedAtOpen;
  private final java.util.concurrent.atomic.AtomicBoolean filling =
      new java.util.concurrent.atomic.AtomicBoolean();
  private volatile boolean closing;

  private String readyKey(SandboxSpec spec) {
    MicroImage given = spec.image();
    return readyKey(spec, given != null ? given : defaultImage());
  }

  private String readyKey(SandboxSpec spec, MicroImage image) {
    SandboxRecord rec = record(spec, image, "x");
    return warmKey(rec, spec.workspaceBytes()) + "/" + spec.namePrefix();
  }

  private @Nullable Sandbox takeReady(SandboxSpec spec) {
    if (readyShapes.isEmpty()) {
      return null;
    }
    ReadyShape shape = readyShapes.get(readyKey(spec));
    if (shape == null) {
      return null;
    }
    Sandbox sb;
    while ((sb = shape.idle.pollFirst()) != null) {
      if (sb.state() != SandboxState.RUNNING) {
        continue; // closed under us (e.g. the VM died and a call closed it)
      }
      try {
        makeRoom(sb.memoryMiB(), null);
        sb.adopt(spec);
        handedOut.put(sb.id(), sb);
        LOG.info("sandbox {} handed out ready", sb.id());
        fillReady();
        return sb;
      } catch (IOException | RuntimeException e) {
        LOG.warn("ready sandbox {} could not be handed out: {}", sb.id(), e.toString());
        closeQuietly(sb);
      }
    }
    fillReady();
    return null;
  }

  /** Starts making ready sandboxes in the background until every shape has its count. */
  private void fillReady() {
    if (closing || !filling.compareAndSet(false, true)) {
      return;
    }
    try {
      readyFiller.execute(this::fillLoop);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      filling.set(false);
    }
  }

  private void fillLoop() {
    try {
      boolean more = true;
      while (more && !closing) {
        more = false;
        for (ReadyShape shape : readyShapes.values()) {
          if (closing || shape.idle.size() >= shape.target) {
            continue;
          }
          more = true;
          try {
            if (shape.spec.useWarmImage() && warmUpForReady(shape.spec)) {
              try {
                warmUp(shape.spec);
              } catch (SandboxException e) {
                // ready sandboxes are made all the same: booted
                LOG.warn("ready sandboxes of {} boot: {}", shape.spec.namePrefix(), e.toString());
              }
            }
            Sandbox sb = makeOrBoot(shape.spec, true);
            if (closing || shape.idle.size() >= shape.target) {
              closeQuietly(sb);
            } else {
              shape.idle.addLast(sb);
              shape.failures = 0;
              Progress.report(
                  progress,
                  new Progress.Step(
                      "ready sandboxes " + shape.spec.namePrefix(),
                      Math.min(shape.idle.size(), shape.target),
                      shape.target,
                      sb.id() + " ready"));
            }
          } catch (RuntimeException e) {
            long n = ++shape.failures;
            LOG.warn("making a ready sandbox failed ({} in a row): {}", n, e.toString());
            Thread.sleep(Math.min(60_000L, 1000L << Math.min(6, n)));
          }
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      filling.set(false);
    }
    if (!closing && readyShapes.values().stream().anyMatch(sh -> sh.idle.size() < sh.target)) {
      fillReady(); // taken while the loop ended
    }
  }

  /** Whether ready sandboxes are being made now (for tests that must not race the filler). */
  boolean fillingReady() {
    return filling.get();
  }

  private final java.util.concurrent.ExecutorService readyFiller =
      java.util.concurrent.Executors.newSingleThreadExecutor(
          dev.agentvm.internal.Threads.namedDaemons("agentvm-sandbox-ready"));

  private static void closeQuietly(Sandbox sb) {
    try {
      sb.close();
    } catch (RuntimeException e) {
      LOG.warn("closing sandbox {} failed: {}", sb.id(), e.toString());
    }
  }

  private Sandbox make(SandboxSpec spec, boolean ready) {
    SandboxSpec.AttachedDisk onThisMachine = spec.attachedDisk();
    if (onThisMachine != null && !disks.isLocal()) {
      // refused before anything is paused or built for it
      throw new SandboxException(
          "a sandbox with an attached disk ("
              + onThisMachine.file()
              + ") runs on this machine's libvirt only, not on "
              + conn.uri());
    }
    MicroImage given = spec.image();
    MicroImage image = given != null ? given : defaultImage();
    String id = spec.namePrefix() + HexFormat.of().formatHex(randomBytes(4));
    Path dir = root.resolve(id);
    SandboxRecord rec = record(spec, image, id);
    rec.ready = ready;
    String key = warmKey(rec, spec.workspaceBytes());
    if (!ready) {
      makeRoom(rec.memoryMiB, null);
    }
    SandboxSpec.AttachedDisk attached = spec.attachedDisk();
    if (attached != null) {
      if (!Files.isRegularFile(attached.file())) {
        throw new SandboxException("the attached disk " + attached.file() + " does not exist");
      }
      rec.attachedDisk = attached.file().toString();
      rec.attachedMount = attached.mountPoint();
    }
    // a warm image's memory was captured without the attached disk: such a sandbox boots
    WarmImages.Image warmImage = attached == null && spec.useWarmImage() ? findWarm(key) : null;
    boolean fromWarm = warmImage != null;
    Tags kind = Tags.of("kind", fromWarm ? "restore" : "cold");
    long t0 = System.nanoTime();
    VM vm = null;
    boolean made = false;
    try (LogContext.Scope c = LogContext.put(LogContext.SANDBOX, id)) {
      Files.createDirectory(dir);
      made = true;
      locked(
          () -> {
            rec.chain.add(disks.emptyBase(spec.workspaceBytes()));
            if (warmImage != null) {
              // read again under the lock collections take: from here on the record made below
              // keeps the layer, and it must still be the image's
              if (!warmImage.equals(warm.find(key))) {
                throw new WarmRestoreException(
                    warmImage, new SandboxException("it was replaced or deleted meanwhile"));
              }
              rec.chain.add(0, warmImage.layer());
            }
            disks.nameNewTop(rec);
            rec.save(dir);
            return Boolean.TRUE;
          });
      AgentClient agent;
      if (warmImage != null) {
        try {
          disks.createTop(dir, rec, rec.chain.get(0));
          vm = restoreWarm(warmImage, template(rec, dir));
          agent = vm.awaitAgent(rec.agentDeadline);
          GuestIdentity.refresh(vm, agent, rec.agentDeadline);
        } catch (WarmRestoreException e) {
          throw e;
        } catch (IOException | RuntimeException e) {
          // its layer gone, its memory damaged, or a restored guest that never answers
          throw new WarmRestoreException(warmImage, e);
        }
      } else {
        disks.createTop(dir, rec, rec.chain.get(0));
        vm = conn.define(template(rec, dir));
        vm.start();
        agent = vm.awaitAgent(rec.agentDeadline);
      }
      rec.virtType = vm.virtType().name();
      rec.save(dir);
      Sandbox sb = new Sandbox(this, dir, rec, vm, agent);
      if (!ready) {
        handedOut.put(id, sb);
      }
      meters.record(
          AgentVmMeter.SANDBOX_CREATE, kind.and("outcome", "success"), System.nanoTime() - t0);
      LOG.info(
          "sandbox {} created in {} ms ({}){}",
          id,
          (System.nanoTime() - t0) / 1_000_000,
          fromWarm ? "restored from the warm image" : "cold boot",
          ready ? ", kept ready" : "");
      return sb;
    } catch (IOException | RuntimeException e) {
      meters.record(
          AgentVmMeter.SANDBOX_CREATE, kind.and("outcome", "failure"), System.nanoTime() - t0);
      SandboxException failure =
          new SandboxException("creating sandbox " + id + " failed: " + e.getMessage(), e);
      if (vm != null) {
        try {
          vm.shutdown(java.time.Duration.ZERO); // a half-made sandbox has nothing to keep
        } catch (RuntimeException c) {
          failure.addSuppressed(c);
        }
        try {
          vm.close();
        } catch (RuntimeException c) {
          failure.addSuppressed(c);
        }
      }
      if (made) { // an id taken meanwhile is another sandbox's directory
        deleteAll(dir, rec, failure);
      }
      throw failure;
    }
  }

  /**
   * Boots {@code spec}'s VM once and keeps its memory and its empty workspace as a warm image, so
   * that {@link #create(SandboxSpec)} with an equal spec (same image, resources and workspace size)
   * restores a copy instead of booting: about a second instead of a cold boot. The warm image is
   * kept under {@code .warm/} for later runs and other processes; for a remote host, its memory and
   * workspace layer are kept in the host's pool and {@code .warm/} records them. Returns at once
   * when it exists.
   */
  public void warmUp(SandboxSpec spec) {
    MicroImage given = spec.image();
    MicroImage image = given != null ? given : defaultImage();
    SandboxRecord rec =
        record(spec, image, "agentvm-warm-" + UUID.randomUUID().toString().substring(0, 8));
    String key = warmKey(rec, spec.workspaceBytes());
    Path warmDir = warmDir();
    try {
      FileLocks.withLock(
          warmDir.resolve(key + ".lock"),
          () -> {
            if (warm.find(key) != null) {
              return Boolean.FALSE;
            }
            long t0 = System.nanoTime();
            warm.clear(key); // what an earlier capture or image of the key left
            Path tmp = warmDir.resolve(key + ".tmp");
            Trees.delete(tmp);
            Files.createDirectories(tmp);
            boolean kept = false;
            try {
              String base = locked(() -> disks.emptyBase(spec.workspaceBytes()));
              rec.chain.add(base);
              String layer = locked(() -> warm.begin(key, rec));
              disks.createTop(tmp, rec, base);
              warmStep(key, 0, "booting " + rec.id);
              try (VM vm = conn.define(template(rec, tmp))) {
                vm.start();
                AgentClient agent = vm.awaitAgent(rec.agentDeadline);
                warmStep(key, 1, "agent ready; warming it");
                // a fresh agent's first request of each kind loads classes: paid here, not in
                // every copy
                dev.agentvm.storage.MemoryImage.warmUp(agent, rec.agentDeadline);
                warmStep(key, 2, "saving memory");
                vm.saveMemory(disks.warmCapture(warmDir, key, layer, tmp));
              }
              warmStep(key, 3, "keeping the workspace layer");
              warm.keep(key, tmp, rec, layer);
              kept = true;
            } finally {
              if (!kept) {
                dropCaptureQuietly(key, tmp, rec);
              }
              Trees.delete(tmp);
            }
            warmStep(key, WARM_STEPS, "made in " + (System.nanoTime() - t0) / 1_000_000 + " ms");
            pruneWarmQuietly(key);
            return Boolean.TRUE;
          });
    } catch (IOException | RuntimeException e) {
      throw new SandboxException("making a warm image failed: " + e.getMessage(), e);
    }
  }

  /**
   * Deletes every warm image of this directory (on a remote host, in its pool), and the layers no
   * sandbox stands on; a capture under way stays. A later {@link #warmUp} captures again. Returns
   * how many images went.
   */
  public int dropWarmImages() {
    try {
      int n = warm.forgetAll();
      collectLayers();
      return n;
    } catch (IOException e) {
      throw new SandboxException("deleting warm images failed: " + e.getMessage(), e);
    }
  }

  private void dropCaptureQuietly(String key, Path tmp, SandboxRecord rec) {
    try {
      warm.drop(key, tmp, rec);
    } catch (IOException | RuntimeException e) {
      // the next capture of the key removes it (its record says what it made)
      LOG.warn("cannot remove the failed capture of warm image {}: {}", key, e.toString());
    }
  }

  private void pruneWarmQuietly(String keep) {
    try {
      int gone = warm.prune(keep, java.time.Instant.now().minus(WARM_UNUSED));
      if (gone > 0) {
        LOG.info("deleted {} warm images unused for {} days", gone, WARM_UNUSED.toDays());
      }
    } catch (IOException | RuntimeException e) {
      // the image just made is kept; pruning runs again with the next one
      LOG.warn("pruning warm images under {} failed: {}", warmDir(), e.toString());
    }
  }

  private WarmImages.@Nullable Image findWarm(String key) {
    try {
      return warm.find(key);
    } catch (IOException e) {
      throw new SandboxException("reading the warm image " + key + ": " + e.getMessage(), e);
    }
  }

  /**
   * Restores a warm image under a sandbox's identity, under its key's restore lock: restores of one
   * image take turns across this machine's processes (each rewrites the image's header), and no
   * pruning or forgetting deletes the memory meanwhile. (On this machine libvirt's restore also
   * locks the memory file itself: another file, {@code <memory>.lock}.)
   *
   * @throws WarmRestoreException if it could not be restored
   */
  private VM restoreWarm(WarmImages.Image image, VMTemplate t) throws IOException {
    VM vm;
    try {
      vm = FileLocks.withLock(warm.restoreLock(image.key()), () -> conn.restore(image.memory(), t));
    } catch (RuntimeException e) {
      throw new WarmRestoreException(image, e);
    }
    warm.used(image.key());
    return vm;
  }

  /** A warm image that could not be restored: the create is made again by booting. */
  private static final class WarmRestoreException extends SandboxException {
    private static final long serialVersionUID = 1L;
    private final transient WarmImages.Image image;

    WarmRestoreException(WarmImages.Image image, Exception cause) {
      super("restoring the warm image " + image.key() + " failed: " + cause.getMessage(), cause);
      this.image = image;
    }
  }

  /**
   * A warm memory image not restored for this long is deleted when another is made: an image or
   * agent change leaves the old one unused for good, at ~200 MB each. (Its workspace layer, a few
   * hundred KB, goes once no sandbox made from it stands on it.)
   */
  static final Duration WARM_UNUSED = Duration.ofDays(7);

  /** Part of a warm image's key: images warmed up with fewer kinds of request are made again. */
  private static final String WARM_UP_VERSION = "warm-up 2";

  private Path warmDir() {
    return root.resolve(".warm");
  }

  /**
   * Makes a sandbox of {@code spec}. One whose warm image cannot be restored (its memory or layer
   * damaged or gone, made by a QEMU the host no longer runs, a restored guest that never answers)
   * is booted instead; when that boot works, the host is fine and the image is what failed: it is
   * forgotten, so that the next {@link #warmUp} captures it again (ready sandboxes wait {@link
   * #WARM_RETRY} before they try).
   */
  private Sandbox makeOrBoot(SandboxSpec spec, boolean ready) {
    try {
      return make(spec, ready);
    } catch (SandboxException e) {
      if (closing || Thread.currentThread().isInterrupted()) {
        throw e; // a create cut short: nothing to learn about the image
      }
      WarmRestoreException failed = null;
      for (Throwable t = e; t != null && failed == null; t = t.getCause()) {
        if (t instanceof WarmRestoreException w) {
          failed = w;
        }
      }
      if (failed == null) {
        throw e;
      }
      LOG.warn("{}; booting instead", failed.getMessage());
      Sandbox sb;
      try {
        sb = make(spec.toBuilder().useWarmImage(false).build(), ready);
      } catch (RuntimeException boot) {
        boot.addSuppressed(e);
        throw boot;
      }
      try {
        if (warm.forget(failed.image)) {
          warmFailed.put(failed.image.key(), Instant.now());
          LOG.warn(
              "the warm image {} is forgotten: the next warm-up captures it again",
              failed.image.key());
        }
      } catch (IOException | RuntimeException f) {
        LOG.warn("cannot forget warm image {}: {}", failed.image.key(), f.toString());
      }
      return sb;
    }
  }

  /** How long ready sandboxes boot before they capture again a warm image that failed. */
  static final Duration WARM_RETRY = Duration.ofMinutes(10);

  /** Warm images this object saw fail, by key, and when. */
  private final Map<String, Instant> warmFailed = new java.util.concurrent.ConcurrentHashMap<>();

  /** Whether ready sandboxes of {@code spec} should capture its warm image if it is missing. */
  private boolean warmUpForReady(SandboxSpec spec) {
    MicroImage given = spec.image();
    MicroImage image = given != null ? given : defaultImage();
    Instant failed = warmFailed.get(warmKey(record(spec, image, "key"), spec.workspaceBytes()));
    return failed == null || failed.isBefore(Instant.now().minus(WARM_RETRY));
  }

  /** What makes two specs' VMs interchangeable at their first HELLO. */
  private static String warmKey(SandboxRecord rec, long workspaceBytes) {
    String shape =
        String.join(
            "\n",
            rec.kernel,
            rec.initrd,
            rec.cmdline,
            String.valueOf(rec.packageDisk),
            rec.diskTarget,
            rec.virtType,
            Integer.toString(rec.vcpus),
            Integer.toString(rec.memoryMiB),
            Long.toString(workspaceBytes),
            WARM_UP_VERSION);
    return dev.agentvm.internal.Hashing.sha256Hex(
            shape.getBytes(java.nio.charset.StandardCharsets.UTF_8))
        .substring(0, 16);
  }

  private static SandboxRecord record(SandboxSpec spec, MicroImage image, String id) {
    SandboxRecord rec = new SandboxRecord();
    rec.id = id;
    rec.uuid = UUID.randomUUID();
    rec.genid = UUID.randomUUID();
    rec.state = SandboxState.RUNNING;
    rec.created = Instant.now();
    rec.owner = ProcessOwners.CURRENT;
    rec.virtType = spec.virtType().name();
    rec.vcpus = spec.resources().vcpus();
    rec.memoryMiB = spec.resources().memoryMiB();
    rec.kernel = image.kernel().toString();
    rec.initrd = image.initramfs().toString();
    rec.cmdline = MicroImage.DEFAULT_CMDLINE;
    rec.packageDisk = image.packageDiskIfAny().map(Path::toString).orElse(null);
    rec.diskTarget = rec.packageDisk == null ? "vda" : "vdb";
    rec.workspaceBytes = spec.workspaceBytes();
    rec.applySettings(spec);
    return rec;
  }

  /** Every sandbox on this host, by id. */
  public List<SandboxInfo> list() {
    return list(Map.of());
  }

  /** The sandboxes that carry every label of {@code selector}, by id. */
  public List<SandboxInfo> list(Map<String, String> selector) {
    return infos(sandboxDirs(root), selector);
  }

  /**
   * The sandboxes under {@code root} as their records say, reaping nothing and starting nothing (an
   * operator's look: {@code agent-vm ps}); ready ones are left out.
   */
  public static List<SandboxInfo> inspect(Path root) {
    return Files.isDirectory(root) ? infos(sandboxDirs(root), Map.of()) : List.of();
  }

  /** Whether sandbox {@code id} has its record here (running, paused or kept ready). */
  boolean holds(String id) {
    return handedOut.containsKey(id)
        || (id.matches("[a-z0-9-]{1,64}")
            && Files.isRegularFile(root.resolve(id).resolve(SandboxRecord.FILE)));
  }

  /** How many sandboxes {@link #open} reaped. */
  public int reapedAtOpen() {
    return reapedAtOpen;
  }

  private static List<SandboxInfo> infos(List<Path> dirs, Map<String, String> selector) {
    List<SandboxInfo> out = new ArrayList<>();
    for (Path dir : dirs) {
      try {
        SandboxRecord rec = SandboxRecord.load(dir);
        SandboxInfo info = rec.info();
        if (!rec.ready && rec.state != SandboxState.CLOSED && info.matches(selector)) {
          out.add(info);
        }
      } catch (IOException e) {
        LOG.debug("skipping {}: {}", dir, e.getMessage());
      }
    }
    out.sort(Comparator.comparing(SandboxInfo::id));
    return out;
  }

  /**
   * The sandbox {@code id}: the object this instance handed out, or for a paused sandbox (made or
   * paused by any process) a handle that resumes it on {@link Sandbox#resume()} or its first call.
   *
   * @throws NoSuchSandboxException if there is none
   * @throws SandboxBusyException if it runs under another live process
   */
  public Sandbox connect(String id) {
    Sandbox mine = handedOut.get(id);
    if (mine != null && mine.state() != SandboxState.CLOSED) {
      return mine;
    }
    if (!id.matches("[a-z0-9-]{1,64}")) {
      throw new NoSuchSandboxException(id);
    }
    Path dir = root.resolve(id);
    SandboxRecord rec;
    try {
      rec = SandboxRecord.load(dir);
    } catch (IOException e) {
      throw new NoSuchSandboxException(id);
    }
    if (rec.state == SandboxState.CLOSED) {
      throw new NoSuchSandboxException(id); // a close that failed: the reaper removes the rest
    }
    if (rec.state == SandboxState.RUNNING) {
      if (ProcessOwners.isAlive(rec.owner)) {
        throw new SandboxBusyException(
            "sandbox " + id + " runs under process " + rec.owner + "; pause it there first");
      }
      throw new SandboxException(
          "sandbox " + id + " was running when its process " + rec.owner + " died; it is lost");
    }
    Sandbox sb = new Sandbox(this, dir, rec, null, null);
    handedOut.put(id, sb);
    return sb;
  }

  /** How long {@link #reap} keeps trying to remove one dead sandbox's VM. */
  static final Duration REAP_VM_WAIT = Duration.ofSeconds(60);

  /**
   * Deletes what nobody can use: sandboxes that were running under a process that has died (their
   * VMs are destroyed), paused sandboxes whose retention ended before {@code now}, and sandboxes
   * whose close could not finish (a host that did not answer). Layers no sandbox needs any more go
   * too. Returns how many sandboxes were removed.
   */
  public int reap(Instant now) {
    try {
      return locked(
          () -> {
            int reaped = 0;
            for (Path dir : sandboxDirs()) {
              SandboxRecord rec;
              try {
                rec = SandboxRecord.load(dir);
              } catch (IOException e) {
                if (Files.exists(dir.resolve(SandboxRecord.FILE))) {
                  LOG.warn("keeping {}: {}", dir, e.getMessage());
                  continue;
                }
                rec = null; // a create that died before its first record
              }
              boolean dead =
                  rec == null
                      || rec.state == SandboxState.CLOSED
                      || (rec.state == SandboxState.RUNNING
                          && !handedOut.containsKey(rec.id)
                          && !ProcessOwners.isAlive(rec.owner))
                      || (rec.state == SandboxState.PAUSED
                          && rec.retainUntil != null
                          && rec.retainUntil.isBefore(now));
              if (!dead && rec != null) {
                continue;
              }
              String name = String.valueOf(dir.getFileName());
              if (!removeVm(name)) {
                continue;
              }
              LOG.info(
                  "reaping sandbox {} ({})",
                  name,
                  rec == null ? "incomplete" : rec.state + ", owner " + rec.owner);
              IOException gone = disks.deleteAll(dir, rec);
              if (gone != null) {
                // one sandbox's files (on a host that does not answer, say) hold up no other's
                LOG.warn(
                    "cannot remove sandbox {} now, trying at the next reaping: {}", name, gone);
                continue;
              }
              Sandbox held = handedOut.remove(name);
              if (held != null) {
                held.markReaped();
              }
              reaped++;
            }
            disks.collect(this::layersInUse);
            return reaped;
          });
    } catch (IOException e) {
      throw new SandboxException("reaping " + root + " failed: " + e.getMessage(), e);
    }
  }

  /**
   * Removes the VM of a reaped sandbox, if there is one. A VM its dead owner left in the middle of
   * a libvirt job (a restore the owner was killed in) can refuse for a while or vanish on its own:
   * tried again until it is gone or {@link #REAP_VM_WAIT} passed. False when it is still there.
   */
  private boolean removeVm(String name) {
    long deadline = System.nanoTime() + REAP_VM_WAIT.toNanos();
    while (conn.domainNames().contains(name)) {
      try {
        conn.attach(name).close();
        return true;
      } catch (NoSuchVmException e) {
        return true; // gone meanwhile
      } catch (IllegalArgumentException e) {
        LOG.warn("keeping sandbox {}: its domain is not agent-vm's: {}", name, e.getMessage());
        return false;
      } catch (RuntimeException e) {
        if (System.nanoTime() > deadline) {
          LOG.warn("cannot remove the VM of reaped sandbox {}: {}", name, e.toString());
          return false;
        }
        LOG.info(
            "removing the VM of reaped sandbox {} failed, trying again: {}", name, e.toString());
      }
      try {
        Thread.sleep(500);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }
    return true;
  }

  /** Removes layers that no record on this host names any more. */
  void collectLayers() throws IOException {
    locked(
        () -> {
          disks.collect(this::layersInUse);
          return Boolean.TRUE;
        });
  }

  /**
   * Every layer the records under the root name now; null when one cannot be read (a sandbox being
   * made, or a damaged record): nothing is collected then. The caller holds the lock.
   */
  private @Nullable Set<String> layersInUse() {
    Set<String> inUse = new HashSet<>();
    for (Path dir : sandboxDirs()) {
      try {
        inUse.addAll(SandboxRecord.load(dir).layers());
      } catch (IOException e) {
        return null;
      }
    }
    try {
      inUse.addAll(warm.layers());
    } catch (IOException e) {
      return null;
    }
    return inUse;
  }

  void collectLayersQuietly() {
    try {
      collectLayers();
    } catch (IOException | RuntimeException e) {
      LOG.warn("collecting unused layers under {} failed: {}", root, e.toString());
    }
  }

  /** A fresh id for a fork of {@code parent}. */
  String newId(String parentId) {
    String prefix = parentId.substring(0, Math.max(0, parentId.length() - 8));
    return prefix + HexFormat.of().formatHex(randomBytes(4));
  }

  Path dirOf(String id) {
    return root.resolve(id);
  }

  void register(Sandbox sb) {
    handedOut.put(sb.id(), sb);
  }

  void forget(Sandbox sb) {
    handedOut.remove(sb.id(), sb);
  }

  <T> T locked(FileLocks.Locked<T> body) throws IOException {
    return FileLocks.withLock(lockFile, body);
  }

  /** The VM template of a sandbox record, its disk's top overlay where {@link #disks} keeps it. */
  VMTemplate template(SandboxRecord rec, Path dir) {
    VMTemplate.Builder b =
        VMTemplate.builder(rec.id)
            .uuid(rec.uuid)
            .genid(rec.genid)
            .resources(new ResourceProfile(rec.vcpus, rec.memoryMiB))
            .virtType(VirtType.valueOf(rec.virtType))
            .boot(new BootSource(Path.of(rec.kernel), Path.of(rec.initrd), rec.cmdline));
    if (rec.packageDisk != null) {
      b.disk(
          new DiskAttachment(
              Path.of(rec.packageDisk),
              DiskAttachment.Format.RAW,
              "vda",
              true,
              MicroImage.PACKAGE_DISK_MOUNT_POINT));
    }
    b.disk(DiskAttachment.qcow2(disks.top(dir, rec), rec.diskTarget, "/workspace"));
    String attached = rec.attachedDisk;
    String mount = rec.attachedMount;
    if (attached != null && mount != null) {
      // the guest names disks in the order they are attached: the next letter after the workspace
      String target = "vd" + (char) (rec.diskTarget.charAt(2) + 1);
      b.disk(DiskAttachment.qcow2(Path.of(attached), target, mount));
    }
    return b.build();
  }

  private synchronized MicroImage defaultImage() {
    if (defaultImage == null) {
      try {
        defaultImage = MicroImageBuilder.create().progress(progress).build();
      } catch (IOException e) {
        throw new SandboxException("building the micro image failed: " + e.getMessage(), e);
      }
      knownDefaultImage = defaultImage;
    }
    return defaultImage;
  }

  /** {@link #defaultImage} once it is made, read without its lock. */
  private volatile @Nullable MicroImage knownDefaultImage;

  /**
   * The local files a sandbox of {@code spec} boots from (kernel, initramfs, package disk), as far
   * as known without building an image: empty for the default image before it was made.
   */
  List<Path> imageFilesIfKnown(SandboxSpec spec) {
    MicroImage given = spec.image();
    MicroImage image = given != null ? given : knownDefaultImage;
    if (image == null) {
      return List.of();
    }
    List<Path> files = new ArrayList<>(List.of(image.kernel(), image.initramfs()));
    image.packageDiskIfAny().ifPresent(files::add);
    return files;
  }

  private List<Path> sandboxDirs() {
    return sandboxDirs(root);
  }

  private static List<Path> sandboxDirs(Path root) {
    List<Path> dirs = new ArrayList<>();
    try (DirectoryStream<Path> s = Files.newDirectoryStream(root)) {
      for (Path p : s) {
        String n = String.valueOf(p.getFileName());
        if (!n.startsWith(".") && Files.isDirectory(p)) {
          dirs.add(p);
        }
      }
    } catch (IOException e) {
      throw new SandboxException("cannot list " + root + ": " + e.getMessage(), e);
    }
    return dirs;
  }

  private static byte[] randomBytes(int n) {
    byte[] b = new byte[n];
    RANDOM.nextBytes(b);
    return b;
  }

  /**
   * Removes a sandbox's directory and files, adding what fails to {@code failure}. What cannot be
   * removed now (its host did not answer) is left to the reaper: the record, if there is one, is
   * marked closed.
   */
  void deleteAll(Path dir, @Nullable SandboxRecord rec, RuntimeException failure) {
    IOException e = disks.deleteAll(dir, rec);
    if (e != null) {
      failure.addSuppressed(e);
      if (rec != null) {
        markClosed(dir, rec, failure);
      }
    }
  }

  /**
   * What {@link #removeIfNotResumed} did: nothing, as another live process runs the sandbox ({@code
   * busyOwner}); or removed it, {@code failure} naming what could not go (then the record is marked
   * closed for the reaper when {@code markedClosed}).
   */
  record Removal(@Nullable String busyOwner, @Nullable IOException failure, boolean markedClosed) {}

  /**
   * Removes a paused sandbox as its record on disk names it now, under the root's lock: another
   * process may have resumed it since {@code known} was read (then nothing is removed), or resumed,
   * checkpointed or forked it and paused it again (then its top and memory images are others than
   * {@code known}'s, and its old top may be a layer that forks stand on). What cannot be removed is
   * left to the reaper, the record marked closed under the same lock.
   */
  Removal removeIfNotResumed(Path dir, SandboxRecord known) throws IOException {
    return locked(
        () -> {
          SandboxRecord now;
          try {
            now = SandboxRecord.load(dir);
          } catch (IOException e) {
            now = known; // gone or unreadable: what this handle knew is all there is
          }
          if (now.state == SandboxState.RUNNING
              && !ProcessOwners.CURRENT.equals(now.owner)
              && ProcessOwners.isAlive(now.owner)) {
            return new Removal(now.owner, null, false);
          }
          IOException failed = disks.deleteAll(dir, now);
          boolean marked = false;
          if (failed != null && Files.exists(dir.resolve(SandboxRecord.FILE))) {
            now.state = SandboxState.CLOSED;
            now.save(dir);
            marked = true;
          }
          return new Removal(null, failed, marked);
        });
  }

  /**
   * Marks {@code rec} closed on disk so that the next reaping removes what is left of it, but only
   * while the record there is still this process's (running under it, or paused as the caller knew
   * it): a sandbox another process resumed meanwhile is not touched.
   */
  void markClosed(Path dir, SandboxRecord rec, RuntimeException failure) {
    try {
      locked(
          () -> {
            SandboxRecord now;
            try {
              now = SandboxRecord.load(dir);
            } catch (IOException gone) {
              return Boolean.FALSE; // nothing left to mark (or unreadable: the reaper keeps it)
            }
            boolean ours =
                (now.state == SandboxState.RUNNING && ProcessOwners.CURRENT.equals(now.owner))
                    || (now.state == SandboxState.PAUSED && rec.state == SandboxState.PAUSED)
                    || now.state == SandboxState.CLOSED;
            if (!ours) {
              failure.addSuppressed(
                  new SandboxException(
                      "sandbox " + rec.id + " now runs under process " + now.owner + "; kept"));
              return Boolean.FALSE;
            }
            now.state = SandboxState.CLOSED;
            now.save(dir);
            return Boolean.TRUE;
          });
    } catch (IOException | RuntimeException e) {
      failure.addSuppressed(e);
    }
  }

  SandboxDisks disks() {
    return disks;
  }

  /**
   * Closes the running sandboxes this object handed out; paused ones are kept. Waits (up to 30 s)
   * for the deletes of resumed sandboxes' memory images that are still under way.
   */
  @Override
  public void close() {
    closing = true;
    readyFiller.shutdownNow();
    try {
      if (!readyFiller.awaitTermination(2, java.util.concurrent.TimeUnit.MINUTES)) {
        LOG.warn("a ready sandbox was still being made after 2 minutes");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    for (ReadyShape shape : readyShapes.values()) {
      Sandbox sb;
      while ((sb = shape.idle.pollFirst()) != null) {
        closeQuietly(sb);
      }
    }
    java.util.concurrent.ScheduledFuture<?> t = ticking;
    if (t != null) {
      t.cancel(false);
    }
    timer.shutdownNow();
    background.shutdown(); // what was handed to it still runs: no file is left behind
    RuntimeException failure = null;
    for (Sandbox sb : List.copyOf(handedOut.values())) {
      if (sb.state() == SandboxState.RUNNING) {
        try {
          sb.close();
        } catch (RuntimeException e) {
          if (failure == null) {
            failure = e;
          } else {
            failure.addSuppressed(e);
          }
        }
      }
    }
    handedOut.clear();
    try {
      if (!background.awaitTermination(30, java.util.concurrent.TimeUnit.SECONDS)) {
        LOG.warn("deleting discarded memory images under {} is taking over 30 s", root);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    meters.close(); // its gauges leave the registries: another object may report there now
    if (failure != null) {
      throw failure;
    }
  }
}
