package dev.agentvm.execution.sandbox;

import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VirtType;
import dev.agentvm.image.MicroImage;
import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressProxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * What a new sandbox is made of, and how long it lives. {@link #defaults()}: the micro image, 1
 * vCPU and 256 MiB, no network device, a 256 MiB workspace, a 5 minute default command timeout, no
 * lease, pause after 10 idle minutes, and 7 days of retention while paused.
 *
 * @param image the guest image; {@code null} for the plain micro image (built or taken from the
 *     cache on first use)
 * @param resources vCPUs and memory
 * @param virtType the virtualisation type ({@link VirtType#AUTO}: what the host can do)
 * @param workspaceBytes the size of the {@code /workspace} file system: a hard cap on what the
 *     guest can store there
 * @param labels free-form labels to find the sandbox by ({@code [A-Za-z0-9_.-]} keys)
 * @param commandTimeout applied to every command that sets none
 * @param idleTimeout a running sandbox with no call for this long is paused ({@link Duration#ZERO}:
 *     never)
 * @param lease how long a sandbox may run before {@link #onLeaseEnd} happens ({@link
 *     Duration#ZERO}: no lease); extended with {@link Sandbox#extendLease}
 * @param onLeaseEnd what happens when the lease ends
 * @param pausedRetention how long a paused sandbox is kept before the reaper deletes it
 * @param agentDeadline how long a boot or restore may take until the guest agent answers
 * @param namePrefix prefix of the sandbox's id (and VM name)
 * @param useWarmImage whether {@code create} restores the warm image of an equal spec when one
 *     exists ({@link Sandboxes#warmUp}) instead of booting (on a remote host too: its warm images
 *     are kept in the host's pool)
 * @param attachedDisk a disk of the caller's attached besides the workspace, or {@code null}
 * @param egress the egress policy, or {@code null} for none: the guest never has a network device;
 *     with a policy its programs reach what the policy allows through the host's proxy ({@link
 *     EgressProxy}, see docs/egress.md)
 */
public record SandboxSpec(
    @Nullable MicroImage image,
    ResourceProfile resources,
    VirtType virtType,
    long workspaceBytes,
    Map<String, String> labels,
    Duration commandTimeout,
    Duration idleTimeout,
    Duration lease,
    LeaseEnd onLeaseEnd,
    Duration pausedRetention,
    Duration agentDeadline,
    String namePrefix,
    boolean useWarmImage,
    @Nullable AttachedDisk attachedDisk,
    @Nullable EgressPolicy egress) {
  /** The prefix of sandbox ids unless a spec says otherwise. */
  public static final String DEFAULT_PREFIX = "agentvm-sbx-";

  /** What happens to a sandbox whose lease ended. */
  public enum LeaseEnd {
    /** Paused: saved to disk, kept for its retention, resumed by the next call. */
    PAUSE,
    /** Closed: everything removed. */
    CLOSE
  }

  /**
   * A qcow2 disk with an ext4 file system that outlives the sandbox (a git task's persistent slot,
   * a cache), attached writable and mounted at {@code mountPoint}. The caller owns the file and
   * must not give it to two sandboxes at once. A sandbox with one is always booted (never restored
   * or kept ready), cannot be paused, checkpointed or forked (its memory would not match the disk
   * afterwards), and is closed with a graceful power-off, so the disk's file system is flushed.
   *
   * @param file the qcow2 image, an absolute path
   * @param mountPoint where the guest mounts it: absolute, not {@code /}, {@code /workspace} or
   *     {@code /usr}, of {@code [A-Za-z0-9_.-/]}
   */
  public record AttachedDisk(Path file, String mountPoint) {
    private static final Pattern MOUNT =
        Pattern.compile("(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){1,8}");

    public AttachedDisk {
      Objects.requireNonNull(file, "file");
      Objects.requireNonNull(mountPoint, "mountPoint");
      if (!file.isAbsolute()) {
        throw new IllegalArgumentException("the attached disk's path must be absolute: " + file);
      }
      if (!MOUNT.matcher(mountPoint).matches()
          || mountPoint.startsWith("/workspace")
          || mountPoint.equals("/usr")
          || mountPoint.startsWith("/usr/")) {
        throw new IllegalArgumentException(
            "mount point must be an absolute path of [A-Za-z0-9_.-/] outside /workspace and /usr,"
                + " was '"
                + mountPoint
                + "'");
      }
    }
  }

  private static final Pattern LABEL_KEY = Pattern.compile("[A-Za-z0-9_.-]{1,63}");
  private static final Pattern PREFIX = Pattern.compile("[a-z0-9][a-z0-9-]{0,39}");

  public SandboxSpec {
    Objects.requireNonNull(resources, "resources");
    Objects.requireNonNull(virtType, "virtType");
    Objects.requireNonNull(onLeaseEnd, "onLeaseEnd");
    labels = Map.copyOf(labels);
    for (Map.Entry<String, String> e : labels.entrySet()) {
      if (!LABEL_KEY.matcher(e.getKey()).matches()
          || e.getValue().length() > 256
          || e.getValue().chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
        throw new IllegalArgumentException("bad label " + e.getKey() + "=" + e.getValue());
      }
    }
    if (workspaceBytes < (16L << 20)) {
      throw new IllegalArgumentException(
          "workspaceBytes must be at least 16 MiB, was " + workspaceBytes);
    }
    for (Duration d : new Duration[] {commandTimeout, pausedRetention, agentDeadline}) {
      if (d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException("durations must be positive, was " + d);
      }
    }
    if (idleTimeout.isNegative() || lease.isNegative()) {
      throw new IllegalArgumentException("idleTimeout and lease must not be negative");
    }
    if (!PREFIX.matcher(namePrefix).matches()) {
      throw new IllegalArgumentException("namePrefix must match " + PREFIX + ", was " + namePrefix);
    }
    if (attachedDisk != null
        && (!idleTimeout.isZero() || (!lease.isZero() && onLeaseEnd == LeaseEnd.PAUSE))) {
      throw new IllegalArgumentException(
          "a sandbox with an attached disk cannot be paused: its idleTimeout must be zero and its"
              + " lease must end in CLOSE (attachedDisk(...) sets both; set neither afterwards)");
    }
  }

  /** The defaults described above. */
  public static SandboxSpec defaults() {
    return builder().build();
  }

  /** A builder starting from the defaults. */
  public static Builder builder() {
    return new Builder();
  }

  /** A builder starting from this spec. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.image = image;
    b.resources = resources;
    b.virtType = virtType;
    b.workspaceBytes = workspaceBytes;
    b.labels.putAll(labels);
    b.commandTimeout = commandTimeout;
    b.idleTimeout = idleTimeout;
    b.lease = lease;
    b.onLeaseEnd = onLeaseEnd;
    b.pausedRetention = pausedRetention;
    b.agentDeadline = agentDeadline;
    b.namePrefix = namePrefix;
    b.useWarmImage = useWarmImage;
    b.attachedDisk = attachedDisk;
    b.egress = egress;
    return b;
  }

  /** A copy with another image (a flavour with packages, e.g. Python). */
  public SandboxSpec withImage(MicroImage image) {
    return toBuilder().image(image).build();
  }

  /** A copy with other resources. */
  public SandboxSpec withResources(ResourceProfile resources) {
    return toBuilder().resources(resources).build();
  }

  /** A copy with another workspace size. */
  public SandboxSpec withWorkspaceBytes(long workspaceBytes) {
    return toBuilder().workspaceBytes(workspaceBytes).build();
  }

  /** A copy with one more label. */
  public SandboxSpec withLabel(String key, String value) {
    return toBuilder().label(key, value).build();
  }

  /** A copy with another default command timeout. */
  public SandboxSpec withCommandTimeout(Duration commandTimeout) {
    return toBuilder().commandTimeout(commandTimeout).build();
  }

  /** A copy with another idle timeout ({@link Duration#ZERO}: never pause when idle). */
  public SandboxSpec withIdleTimeout(Duration idleTimeout) {
    return toBuilder().idleTimeout(idleTimeout).build();
  }

  /** A copy with a lease and what happens at its end. */
  public SandboxSpec withLease(Duration lease, LeaseEnd onLeaseEnd) {
    return toBuilder().lease(lease).onLeaseEnd(onLeaseEnd).build();
  }

  /** A copy with another retention for paused sandboxes. */
  public SandboxSpec withPausedRetention(Duration pausedRetention) {
    return toBuilder().pausedRetention(pausedRetention).build();
  }

  /** A copy with another id prefix (tests use {@code agentvm-test-} so leaks are found). */
  public SandboxSpec withNamePrefix(String namePrefix) {
    return toBuilder().namePrefix(namePrefix).build();
  }

  /** A copy with {@code disk} attached (see {@link AttachedDisk}; no idle pause, lease closes). */
  public SandboxSpec withAttachedDisk(AttachedDisk disk) {
    return toBuilder().attachedDisk(disk).build();
  }

  /**
   * A copy whose guest reaches what {@code policy} allows through the host's egress proxy (still no
   * network device); changeable later on the running sandbox ({@link Sandbox#egressPolicy}).
   */
  public SandboxSpec withEgress(EgressPolicy policy) {
    return toBuilder().egress(policy).build();
  }

  /** Builds a {@link SandboxSpec}; starts from the defaults. */
  public static final class Builder {
    private @Nullable MicroImage image;
    private ResourceProfile resources = ResourceProfile.LIGHT;
    private VirtType virtType = VirtType.AUTO;
    private long workspaceBytes = 256L << 20;
    private final Map<String, String> labels = new LinkedHashMap<>();
    private Duration commandTimeout = Duration.ofMinutes(5);
    private Duration idleTimeout = Duration.ofMinutes(10);
    private Duration lease = Duration.ZERO;
    private LeaseEnd onLeaseEnd = LeaseEnd.PAUSE;
    private Duration pausedRetention = Duration.ofDays(7);
    private Duration agentDeadline = Duration.ofMinutes(2);
    private String namePrefix = DEFAULT_PREFIX;
    private boolean useWarmImage = true;
    private @Nullable AttachedDisk attachedDisk;
    private @Nullable EgressPolicy egress;

    private Builder() {}

    /** The egress policy ({@link SandboxSpec#egress()}); null for no egress at all. */
    public Builder egress(@Nullable EgressPolicy policy) {
      this.egress = policy;
      return this;
    }

    public Builder image(MicroImage image) {
      this.image = image;
      return this;
    }

    public Builder resources(ResourceProfile resources) {
      this.resources = resources;
      return this;
    }

    public Builder virtType(VirtType virtType) {
      this.virtType = virtType;
      return this;
    }

    public Builder workspaceBytes(long workspaceBytes) {
      this.workspaceBytes = workspaceBytes;
      return this;
    }

    public Builder label(String key, String value) {
      labels.put(key, value);
      return this;
    }

    public Builder commandTimeout(Duration commandTimeout) {
      this.commandTimeout = commandTimeout;
      return this;
    }

    public Builder idleTimeout(Duration idleTimeout) {
      this.idleTimeout = idleTimeout;
      return this;
    }

    public Builder lease(Duration lease) {
      this.lease = lease;
      return this;
    }

    public Builder onLeaseEnd(LeaseEnd onLeaseEnd) {
      this.onLeaseEnd = onLeaseEnd;
      return this;
    }

    public Builder pausedRetention(Duration pausedRetention) {
      this.pausedRetention = pausedRetention;
      return this;
    }

    public Builder agentDeadline(Duration agentDeadline) {
      this.agentDeadline = agentDeadline;
      return this;
    }

    public Builder namePrefix(String namePrefix) {
      this.namePrefix = namePrefix;
      return this;
    }

    public Builder useWarmImage(boolean useWarmImage) {
      this.useWarmImage = useWarmImage;
      return this;
    }

    /**
     * Attaches a disk of the caller's ({@link AttachedDisk}). Such a sandbox cannot be paused, so
     * this also sets the idle timeout to zero and the lease's end to {@link LeaseEnd#CLOSE}.
     */
    public Builder attachedDisk(AttachedDisk disk) {
      this.attachedDisk = Objects.requireNonNull(disk, "disk");
      this.idleTimeout = Duration.ZERO;
      this.onLeaseEnd = LeaseEnd.CLOSE;
      return this;
    }

    public SandboxSpec build() {
      return new SandboxSpec(
          image,
          resources,
          virtType,
          workspaceBytes,
          labels,
          commandTimeout,
          idleTimeout,
          lease,
          onLeaseEnd,
          pausedRetention,
          agentDeadline,
          namePrefix,
          useWarmImage,
          attachedDisk,
          egress);
    }
  }
}
