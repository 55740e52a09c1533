package dev.agentvm.execution;

import java.time.Duration;
import java.util.Objects;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * Sizing and timing of a {@link VMPool}.
 *
 * @param minSize VMs kept ready (idle or being made) at all times
 * @param maxSize VMs at most, idle, in use and being made together
 * @param parallelism VMs made or removed at once (on a 2-core TCG host more than 2 only queue)
 * @param ttl an idle VM older than this is replaced
 * @param healthCheckInterval how often idle VMs are checked (and TTLs applied)
 * @param closeGrace on {@link VMPool#close()}, how long in-use VMs are waited for and how long each
 *     guest gets to power off before it is destroyed
 * @param namePrefix prefix of the VMs' names (the reaper and tests recognise VMs by it)
 * @param name the pool's name: the {@code pool} tag of its meters and the {@code pool} key in the
 *     MDC of its threads; {@code null} for {@link #poolName() one made from namePrefix}. Pools that
 *     report into one registry need different names.
 */
public record PoolConfig(
    int minSize,
    int maxSize,
    int parallelism,
    Duration ttl,
    Duration healthCheckInterval,
    Duration closeGrace,
    String namePrefix,
    @Nullable String name) {
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");

  public static final PoolConfig DEFAULT =
      new PoolConfig(
          2,
          10,
          2,
          Duration.ofMinutes(30),
          Duration.ofSeconds(10),
          Duration.ofSeconds(10),
          "agentvm-pool-",
          null);

  public PoolConfig {
    if (minSize < 0) {
      throw new IllegalArgumentException("minSize must be >= 0, was " + minSize);
    }
    if (maxSize < 1 || maxSize < minSize) {
      throw new IllegalArgumentException(
          "maxSize must be >= 1 and >= minSize (" + minSize + "), was " + maxSize);
    }
    if (parallelism < 1) {
      throw new IllegalArgumentException("parallelism must be >= 1, was " + parallelism);
    }
    Objects.requireNonNull(ttl, "ttl");
    Objects.requireNonNull(healthCheckInterval, "healthCheckInterval");
    Objects.requireNonNull(closeGrace, "closeGrace");
    Objects.requireNonNull(namePrefix, "namePrefix");
    if (ttl.isNegative() || ttl.isZero()) {
      throw new IllegalArgumentException("ttl must be positive, was " + ttl);
    }
    if (healthCheckInterval.isNegative() || healthCheckInterval.isZero()) {
      throw new IllegalArgumentException(
          "healthCheckInterval must be positive, was " + healthCheckInterval);
    }
    if (name != null && !NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "name must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit, was " + name);
    }
  }

  /** A config without a name: the pool's name is made from {@code namePrefix}. */
  public PoolConfig(
      int minSize,
      int maxSize,
      int parallelism,
      Duration ttl,
      Duration healthCheckInterval,
      Duration closeGrace,
      String namePrefix) {
    this(minSize, maxSize, parallelism, ttl, healthCheckInterval, closeGrace, namePrefix, null);
  }

  /**
   * The pool's name: {@link #name()} if given, else {@code namePrefix} without its trailing dashes
   * ({@code agentvm-pool-} gives {@code agentvm-pool}).
   */
  public String poolName() {
    if (name != null) {
      return name;
    }
    String n = namePrefix.replaceAll("[-_.]+$", "");
    return n.isEmpty() ? "pool" : n;
  }

  /** The pool's name, for its meters ({@code pool} tag) and logs ({@code pool} in the MDC). */
  public PoolConfig withName(String name) {
    return new PoolConfig(
        minSize,
        maxSize,
        parallelism,
        ttl,
        healthCheckInterval,
        closeGrace,
        namePrefix,
        Objects.requireNonNull(name, "name"));
  }

  public PoolConfig withSize(int min, int max) {
    return new PoolConfig(
        min, max, parallelism, ttl, healthCheckInterval, closeGrace, namePrefix, name);
  }

  public PoolConfig withTtl(Duration ttl) {
    return new PoolConfig(
        minSize, maxSize, parallelism, ttl, healthCheckInterval, closeGrace, namePrefix, name);
  }

  public PoolConfig withNamePrefix(String prefix) {
    return new PoolConfig(
        minSize, maxSize, parallelism, ttl, healthCheckInterval, closeGrace, prefix, name);
  }

  public PoolConfig withParallelism(int parallelism) {
    return new PoolConfig(
        minSize, maxSize, parallelism, ttl, healthCheckInterval, closeGrace, namePrefix, name);
  }
}
