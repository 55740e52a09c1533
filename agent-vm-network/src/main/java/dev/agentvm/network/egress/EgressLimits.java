package dev.agentvm.network.egress;

import java.time.Duration;

/**
 * What one sandbox's egress may cost the host. Exceeding a limit ends the connection (or refuses
 * it) with a clear reason, in its {@link EgressRecord} too.
 *
 * @param maxConnections connections open at once (1..1024); more are refused
 * @param maxBytesPerConnection bytes one connection may carry, both directions together
 * @param maxBytesTotal bytes all connections of the proxy may carry over its life
 * @param idleTimeout a connection with no byte either way for this long is closed
 * @param connectTimeout how long connecting to the server may take
 * @param requestTimeout how long the guest may take to send its proxy request
 */
public record EgressLimits(
    int maxConnections,
    long maxBytesPerConnection,
    long maxBytesTotal,
    Duration idleTimeout,
    Duration connectTimeout,
    Duration requestTimeout) {
  public EgressLimits {
    if (maxConnections < 1 || maxConnections > 1024) {
      throw new IllegalArgumentException("maxConnections must be 1..1024, was " + maxConnections);
    }
    if (maxBytesPerConnection < 1 || maxBytesTotal < 1) {
      throw new IllegalArgumentException("byte limits must be > 0");
    }
    for (Duration d : new Duration[] {idleTimeout, connectTimeout, requestTimeout}) {
      if (d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException("timeouts must be > 0, was " + d);
      }
    }
  }

  /**
   * 64 connections, 1 GiB per connection, 16 GiB in all, 5 idle minutes, 10 s to connect, 30 s for
   * the request.
   */
  public static EgressLimits defaults() {
    return new EgressLimits(
        64,
        1L << 30,
        16L << 30,
        Duration.ofMinutes(5),
        Duration.ofSeconds(10),
        Duration.ofSeconds(30));
  }

  public EgressLimits withMaxConnections(int n) {
    return new EgressLimits(
        n, maxBytesPerConnection, maxBytesTotal, idleTimeout, connectTimeout, requestTimeout);
  }

  public EgressLimits withMaxBytes(long perConnection, long total) {
    return new EgressLimits(
        maxConnections, perConnection, total, idleTimeout, connectTimeout, requestTimeout);
  }

  public EgressLimits withIdleTimeout(Duration d) {
    return new EgressLimits(
        maxConnections, maxBytesPerConnection, maxBytesTotal, d, connectTimeout, requestTimeout);
  }
}
