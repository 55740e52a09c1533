package dev.agentvm.core.internal.libvirt;

import com.sun.jna.Pointer;
import dev.agentvm.core.ConnectionException;
import dev.agentvm.core.HypervisorException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;
import org.libvirt.Connect;
import org.libvirt.Error;
import org.libvirt.LibvirtException;
import org.libvirt.event.LifecycleListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One libvirt connection that survives a libvirtd restart: every call goes through {@link #call},
 * which reconnects once when the connection died and translates libvirt's errors ({@link
 * LibvirtErrors}). Shared by the subsystems of {@link LibvirtBackend}. Thread-safe.
 */
final class LibvirtSession {
  private static final Logger LOG = LoggerFactory.getLogger(LibvirtSession.class);

  private final String uri;
  private final LifecycleListener lifecycle;

  /** Replaced when libvirtd restarted under us (see {@link #recover}). */
  private volatile NativeConnect conn;

  /** Counts reconnections; domain handles look their domain up again when it moved on. */
  private final AtomicLong generation = new AtomicLong();

  private final Object reconnectLock = new Object();
  private final AtomicBoolean closed = new AtomicBoolean();

  /** {@link Connect} with access to its native pointer for {@link LibvirtNative} calls. */
  private static final class NativeConnect extends Connect {
    NativeConnect(String uri) throws LibvirtException {
      super(uri);
    }

    Pointer pointer() {
      return vcp.getPointer();
    }
  }

  private LibvirtSession(String uri, NativeConnect conn, LifecycleListener lifecycle) {
    this.uri = uri;
    this.conn = conn;
    this.lifecycle = lifecycle;
    keepAlive(uri, conn);
    try {
      conn.addLifecycleListener(lifecycle);
    } catch (LibvirtException e) {
      LOG.warn("no lifecycle events from {}: {}; falling back to polling", uri, e.getMessage());
    }
  }

  /**
   * Opens a connection, retrying transient failures (a daemon that is starting) until {@code
   * retryFor} has passed; {@code lifecycle} hears the domains' events, also after a reconnection.
   *
   * @throws ConnectionException naming the URI and libvirt's message
   */
  static LibvirtSession open(String uri, Duration retryFor, LifecycleListener lifecycle) {
    try {
      EventLoop.ensureStarted();
    } catch (LibvirtException e) {
      throw new ConnectionException(uri, "cannot start libvirt's event loop: " + e.getMessage(), e);
    } catch (LinkageError e) {
      throw new ConnectionException(uri, "cannot load libvirt (is libvirt0 installed?): " + e, e);
    }
    long deadline = System.nanoTime() + retryFor.toNanos();
    long backoff = 100;
    int attempt = 0;
    while (true) {
      attempt++;
      try {
        LOG.debug("connecting to {} (attempt {})", uri, attempt);
        RemoteReach.check(uri);
        return new LibvirtSession(uri, connectTo(uri), lifecycle);
      } catch (LibvirtException e) {
        // a local daemon may be starting; a remote host that answered the reach check and then
        // refused (certificates, authentication, a daemon that is not libvirt's) refuses again
        boolean local = HostVolumes.isLocal(uri);
        if (!local
            || !LibvirtErrors.isTransient(e)
            || System.nanoTime() + backoff * 1_000_000 > deadline) {
          Error err = e.getError();
          throw new ConnectionException(
              uri,
              (err != null && err.getMessage() != null ? err.getMessage().trim() : e.getMessage())
                  + (attempt > 1 ? " (after " + attempt + " attempts)" : "")
                  + (local
                      ? ". Is libvirtd running and may this user use "
                          + uri
                          + "? (scripts/setup-host.sh)"
                      : ". Check the host's libvirtd and the TLS or SSH set-up for this client"
                          + " (docs/scale-out.md, Set-up)"),
              e);
        }
        LOG.debug(
            "connect to {} failed transiently: {}; retrying in {} ms",
            uri,
            e.getMessage(),
            backoff);
        sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  String uri() {
    return uri;
  }

  /** A new connection; to a remote host within {@link RemoteReach#CONNECT_TIMEOUT}. */
  private static NativeConnect connectTo(String uri) throws LibvirtException {
    return RemoteReach.connect(uri, () -> new NativeConnect(uri));
  }

  /**
   * Seconds between keepalive probes of a remote host, and probes it may miss before it is dead.
   */
  static final int KEEPALIVE_INTERVAL_SECONDS = 2;

  static final int KEEPALIVE_MISSES = 3;

  /**
   * A remote host that stops answering (hung, or its network gone) closes the connection within
   * about {@code interval * (misses + 1)} seconds, failing the calls that wait on it, instead of
   * libvirt's default of half a minute.
   */
  private static void keepAlive(String uri, Connect c) {
    if (HostVolumes.isLocal(uri)) {
      return;
    }
    try {
      c.setKeepAlive(KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_MISSES);
    } catch (LibvirtException e) {
      LOG.warn("no keepalive on {}: {}", uri, e.getMessage());
    }
  }

  /** The current libvirt-java connection (replaced after a reconnection). */
  Connect connect() {
    return conn;
  }

  /** How many times this session reconnected. */
  long generation() {
    return generation.get();
  }

  /**
   * The current connection's native pointer, for {@link LibvirtNative} calls, checked to be alive
   * (reconnected if it was not) first.
   */
  Pointer nativeConnection() {
    isAlive();
    return conn.pointer();
  }

  /** The current connection's native pointer, unchecked (for calls that tolerate a dead one). */
  Pointer pointer() {
    return conn.pointer();
  }

  /** Runs a libvirt call, reconnecting and retrying once if the connection had died. */
  <T> T call(String operation, LibvirtCall<T> c) {
    if (closed.get()) {
      throw new ConnectionException(uri, operation + ": connection is closed", null);
    }
    try {
      return c.call();
    } catch (LibvirtException e) {
      if (recover(e)) {
        try {
          return c.call();
        } catch (LibvirtException again) {
          throw LibvirtErrors.translate(uri, operation, again);
        }
      }
      throw LibvirtErrors.translate(uri, operation, e);
    }
  }

  /** A libvirt call. */
  @FunctionalInterface
  interface LibvirtCall<T> {
    T call() throws LibvirtException;
  }

  /** {@link #call} for an operation that has no result. */
  void run(String operation, LibvirtAction a) {
    call(
        operation,
        () -> {
          a.run();
          return Boolean.TRUE;
        });
  }

  /** A libvirt call without a result. */
  @FunctionalInterface
  interface LibvirtAction {
    void run() throws LibvirtException;
  }

  boolean isAlive() {
    if (closed.get()) {
      return false;
    }
    try {
      if (conn.isAlive()) {
        return true;
      }
    } catch (LibvirtException e) {
      // fall through: try to get a new connection
    }
    try {
      return recover(null) && conn.isAlive();
    } catch (LibvirtException | RuntimeException e) {
      return false;
    }
  }

  /**
   * If the connection died (libvirtd restarted or was killed), opens a new one, registers the
   * lifecycle listener on it again, and returns true; returns false if the connection is fine.
   * Running domains are not affected by a libvirtd restart: QEMU keeps running, and the new
   * libvirtd re-attaches to it; domain handles look their domain up again on the new connection.
   *
   * @throws ConnectionException if libvirtd did not come back within a minute
   */
  private boolean recover(@Nullable LibvirtException cause) {
    if (closed.get()) {
      return false;
    }
    NativeConnect dead = conn;
    try {
      if (dead.isAlive()) {
        return false;
      }
    } catch (LibvirtException e) {
      // not alive
    }
    synchronized (reconnectLock) {
      @SuppressWarnings("ReferenceEquality") // identity is the point: is it still the same handle?
      boolean replaced = conn != dead;
      if (replaced) {
        return true; // another thread reconnected meanwhile
      }
      LOG.warn(
          "connection to {} lost{}; reconnecting",
          uri,
          cause == null ? "" : " (" + cause.getMessage() + ")");
      try {
        dead.close();
      } catch (LibvirtException | RuntimeException e) {
        LOG.debug("closing the dead connection: {}", e.getMessage());
      }
      // a local daemon restarting comes back in seconds; a remote host that went away must fail
      // its calls fast (one attempt), so that work moves to other hosts instead of waiting
      boolean local = HostVolumes.isLocal(uri);
      long deadline = System.nanoTime() + (local ? Duration.ofMinutes(1).toNanos() : 0);
      long backoff = 100;
      while (true) {
        try {
          RemoteReach.check(uri);
          NativeConnect fresh = connectTo(uri);
          keepAlive(uri, fresh);
          try {
            fresh.addLifecycleListener(lifecycle);
          } catch (LibvirtException e) {
            LOG.warn("no lifecycle events after reconnecting: {}", e.getMessage());
          }
          conn = fresh;
          generation.incrementAndGet();
          LOG.info("reconnected to {}", uri);
          return true;
        } catch (LibvirtException e) {
          if (System.nanoTime() > deadline) {
            throw new ConnectionException(
                uri,
                (local ? "libvirtd did not come back within a minute: " : "host does not answer: ")
                    + e.getMessage(),
                e);
          }
          sleep(backoff);
          backoff = Math.min(backoff * 2, 2000);
        }
      }
    }
  }

  void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    try {
      conn.removeLifecycleListener(lifecycle);
    } catch (LibvirtException | RuntimeException e) {
      LOG.debug("removing lifecycle listener: {}", e.getMessage());
    }
    try {
      conn.close();
    } catch (LibvirtException e) {
      LOG.warn("closing libvirt connection {}: {}", uri, e.getMessage());
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new HypervisorException("interrupted", e);
    }
  }
}
