package dev.agentvm.execution.sandbox;

import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VirtType;
import dev.agentvm.image.MicroImage;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * What a new sandbox is made of. {@link #defaults()} is the micro image, 1 vCPU and 256 MiB, no
 * network, a 256 MiB workspace, a 5 minute default command timeout and 7 days of retention while
 * paused.
 *
 * @param image the guest image; {@code null} for the plain micro image (built or taken from the
 *     cache on first use)
 * @param resources vCPUs and memory
 * @param virtType the virtualisation type ({@link VirtType#AUTO}: what the host can do)
 * @param workspaceBytes the size of the {@code /workspace} file system: a hard cap on what the
 *     guest can store there
 * @param labels free-form labels to find the sandbox by ({@code [A-Za-z0-9_.-]} keys)
 * @param commandTimeout applied to every command that sets none
 * @param pausedRetention how long a paused sandbox is kept before the reaper deletes it
 * @param agentDeadline how long a boot or restore may take until the guest agent answers
 * @param namePrefix prefix of the sandbox's id (and VM name)
 */
public record SandboxSpec(
    @Nullable MicroImage image,
    ResourceProfile resources,
    VirtType virtType,
    long workspaceBytes,
    Map<String, String> labels,
    Duration commandTimeout,
    Duration pausedRetention,
    Duration agentDeadline,
    String namePrefix) {
  /** The prefix of sandbox ids unless a spec says otherwise. */
  public static final String DEFAULT_PREFIX = "agentvm-sbx-";

  private static final Pattern LABEL_KEY = Pattern.compile("[A-Za-z0-9_.-]{1,63}");
  private static final Pattern PREFIX = Pattern.compile("[a-z0-9][a-z0-9-]{0,39}");

  public SandboxSpec {
    Objects.requireNonNull(resources, "resources");
    Objects.requireNonNull(virtType, "virtType");
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
    if (!PREFIX.matcher(namePrefix).matches()) {
      throw new IllegalArgumentException("namePrefix must match " + PREFIX + ", was " + namePrefix);
    }
  }

  /** The defaults described above. */
  public static SandboxSpec defaults() {
    return new SandboxSpec(
        null,
        ResourceProfile.LIGHT,
        VirtType.AUTO,
        256L << 20,
        Map.of(),
        Duration.ofMinutes(5),
        Duration.ofDays(7),
        Duration.ofMinutes(2),
        DEFAULT_PREFIX);
  }

  /** A copy with another image (a flavour with packages, e.g. Python). */
  public SandboxSpec withImage(MicroImage image) {
    return new SandboxSpec(
        image,
        resources,
        virtType,
        workspaceBytes,
        labels,
        commandTimeout,
        pausedRetention,
        agentDeadline,
        namePrefix);
  }

  /** A copy with other resources. */
  public SandboxSpec withResources(ResourceProfile resources) {
    return new SandboxSpec(
        image,
        resources,
        virtType,
        workspaceBytes,
        labels,
        commandTimeout,
        pausedRetention,
        agentDeadline,
        namePrefix);
  }

  /** A copy with another workspace size. */
  public SandboxSpec withWorkspaceBytes(long workspaceBytes) {
    return new SandboxSpec(
        image,
        resources,
        virtType,
        workspaceBytes,
        labels,
        commandTimeout,
        pausedRetention,
        agentDeadline,
        namePrefix);
  }

  /** A copy with one more label. */
  public SandboxSpec withLabel(String key, String value) {
    Map<String, String> l = new LinkedHashMap<>(labels);
    l.put(key, value);
    return new SandboxSpec(
        image,
        resources,
        virtType,
        workspaceBytes,
        l,
        commandTimeout,
        pausedRetention,
        agentDeadline,
        namePrefix);
  }

  /** A copy with another default command timeout. */
  public SandboxSpec withCommandTimeout(Duration commandTimeout) {
    return new SandboxSpec(
        image,
        resources,
        virtType,
        workspaceBytes,
        labels,
        commandTimeout,
        pausedRetention,
        agentDeadline,
        namePrefix);
  }

  /** A copy with another retention for paused sandboxes. */
  public SandboxSpec withPausedRetention(Duration pausedRetention) {
    return new SandboxSpec(
        image,
        resources,
        virtType,
        workspaceBytes,
        labels,
        commandTimeout,
        pausedRetention,
        agentDeadline,
        namePrefix);
  }

  /** A copy with another id prefix (tests use {@code agentvm-test-} so leaks are found). */
  public SandboxSpec withNamePrefix(String namePrefix) {
    return new SandboxSpec(
        image,
        resources,
        virtType,
        workspaceBytes,
        labels,
        commandTimeout,
        pausedRetention,
        agentDeadline,
        namePrefix);
  }
}
