package dev.agentvm.core.internal.libvirt;

import com.sun.jna.NativeLong;
import com.sun.jna.Pointer;
import dev.agentvm.core.agent.AgentTransport;
import dev.agentvm.core.internal.io.BlockStreams;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.util.ArrayDeque;
import java.util.Arrays;
import org.jspecify.annotations.Nullable;
import org.libvirt.LibvirtException;

/**
 * A domain's virtio-serial channel (or console) reached through libvirt ({@code
 * virDomainOpenChannel}) instead of its UNIX socket, so it works wherever the libvirt URI does
 * (remote hosts included). Each connection has its own libvirt connection.
 *
 * <p>Receiving is non-blocking and driven by libvirt's event loop: the loop's callback takes what
 * arrived into a bounded buffer that {@link #input()} reads. A blocking receive waited inside
 * libvirt's client I/O for its poll timeout (up to the keepalive interval, 2-5 s) when another
 * thread sent on the same stream, seen as multi-second round trips over remote hosts. A closed
 * connection is heard through libvirt's close callback (a non-blocking receive on it would only
 * ever say "nothing yet"), and a waiting reader also looks for itself every {@link
 * #READ_POLL_MILLIS}. Sending blocks in libvirt (the remote driver's streams always do).
 */
final class LibvirtStreamConnection implements AgentTransport.Connection {
  static final int VIR_STREAM_NONBLOCK = 1;
  static final int EVENT_READABLE = 1;
  static final int EVENT_WRITABLE = 2;
  static final int EVENT_ERROR = 4;
  static final int EVENT_HANGUP = 8;

  /** Received bytes buffered before reading pauses until the reader catches up. */
  static final int MAX_BUFFERED = 1 << 20;

  private static final int CHUNK = 64 * 1024;

  private final LibvirtNative lib;
  private final Pointer conn;
  private final Pointer stream;

  /** Live connections by id: libvirt's callbacks carry the id, never a reference to us. */
  private static final java.util.Map<Long, LibvirtStreamConnection> LIVE =
      new java.util.concurrent.ConcurrentHashMap<>();

  private static final java.util.concurrent.atomic.AtomicLong IDS =
      new java.util.concurrent.atomic.AtomicLong();

  /**
   * One callback for all streams, held for the JVM's life (libvirt 9.0 never calls a stream
   * callback's free function, so per-stream JNA callbacks could never be released). A call for a
   * connection already closed finds nothing and does nothing.
   */
  private static final LibvirtNative.StreamEventCallback ON_EVENT =
      (st, events, opaque) -> {
        LibvirtStreamConnection c = opaque == null ? null : LIVE.get(Pointer.nativeValue(opaque));
        if (c != null) {
          c.onEvent(events);
        }
      };

  private static final LibvirtNative.ConnectCloseCallback ON_CLOSE =
      (connection, reason, opaque) -> {
        LibvirtStreamConnection c = opaque == null ? null : LIVE.get(Pointer.nativeValue(opaque));
        if (c != null) {
          c.connectionClosed(reason);
        }
      };

  private final long id = IDS.incrementAndGet();

  private final Object lock = new Object();
  private final Object drainLock = new Object();
  private final Object eventsLock = new Object();
  private final byte[] drainBuffer = new byte[CHUNK]; // guarded by drainLock

  /**
   * How often a waiting reader receives by itself: libvirt 9.0 does not call back when the stream's
   * connection dies, so a reader would otherwise wait for ever.
   */
  static final long READ_POLL_MILLIS = 500;

  private final ArrayDeque<byte[]> received = new ArrayDeque<>(); // guarded by lock
  private int headOffset; // bytes of received.peekFirst() already read; guarded by lock
  private long buffered; // guarded by lock
  private boolean eof; // guarded by lock
  private @Nullable String failure; // guarded by lock
  private boolean closed; // guarded by lock
  private boolean readingPaused; // guarded by lock

  /** Native calls in flight; the stream is freed only when none is. Guarded by {@code lock}. */
  private int active;

  private final InputStream in;
  private final OutputStream out;

  private LibvirtStreamConnection(LibvirtNative lib, Pointer conn, Pointer stream) {
    this.lib = lib;
    this.conn = conn;
    this.stream = stream;
    this.in =
        new BlockStreams.In() {
          @Override
          public int read(byte[] b, int off, int len) throws IOException {
            return LibvirtStreamConnection.this.read(b, off, len);
          }
        };
    this.out =
        new BlockStreams.Out() {
          @Override
          public void write(byte[] b, int off, int len) throws IOException {
            LibvirtStreamConnection.this.write(b, off, len);
          }
        };
  }

  /** On libvirt's event loop thread: takes what arrived, notes the end or an error. */
  private void onEvent(int events) {
    drain(); // also on an error or hang-up: bytes that came before it are still the reader's
    boolean ended;
    synchronized (lock) {
      if ((events & (EVENT_ERROR | EVENT_HANGUP)) != 0) {
        eof = true;
      }
      ended = eof || failure != null;
      lock.notifyAll();
    }
    if (ended) {
      updateEvents(); // no more READABLE: libvirt would call back about the end for ever
    }
  }

  /** On libvirt's event loop thread: the stream's connection closed (the host went away). */
  private void connectionClosed(int reason) {
    drain();
    synchronized (lock) {
      if (failure == null && !eof) {
        failure = "the connection to libvirt closed (reason " + reason + ")";
      }
      lock.notifyAll();
    }
  }

  /** Receives without blocking until nothing is waiting, the buffer is full or the stream ends. */
  private void drain() {
    synchronized (drainLock) { // two drains at once could append their chunks out of order
      drainLocked();
    }
  }

  private void drainLocked() {
    byte[] buf = drainBuffer;
    while (true) {
      int n;
      synchronized (lock) {
        if (closed || eof || failure != null || buffered >= MAX_BUFFERED) {
          break;
        }
        active++;
      }
      try {
        n = lib.virStreamRecv(stream, buf, new NativeLong(buf.length));
      } finally {
        exit();
      }
      synchronized (lock) {
        if (n > 0) {
          received.addLast(Arrays.copyOf(buf, n));
          buffered += n;
          lock.notifyAll();
          continue;
        }
        if (n == 0) {
          eof = true;
        } else if (n == -1 && !closed) {
          failure = "libvirt stream receive failed: " + lib.virGetLastErrorMessage();
        } // -2: nothing more now
        lock.notifyAll();
      }
      break;
    }
    boolean pause;
    synchronized (lock) {
      pause = !closed && !readingPaused && buffered >= MAX_BUFFERED;
      if (pause) {
        readingPaused = true;
      }
    }
    if (pause) {
      updateEvents(); // the reader resumes it when it has caught up
    }
  }

  /**
   * Notes a dead connection as the stream's failure: a non-blocking receive on a stream whose
   * connection closed says only "nothing yet", for ever.
   */
  private void checkConnection() {
    if (!enter()) {
      return;
    }
    int alive;
    try {
      alive = lib.virConnectIsAlive(conn);
    } finally {
      exit();
    }
    if (alive != 1) {
      drain(); // what came before the end is still the reader's
      synchronized (lock) {
        if (failure == null && !eof) {
          failure = "the connection to libvirt was lost";
        }
        lock.notifyAll();
      }
    }
  }

  private int read(byte[] b, int off, int len) throws IOException {
    if (len == 0) {
      return 0;
    }
    while (true) {
      synchronized (lock) {
        if (!received.isEmpty() || eof || failure != null || closed) {
          break;
        }
        try {
          lock.wait(READ_POLL_MILLIS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("interrupted reading a libvirt stream");
        }
      }
      // look for ourselves too: an end or an error libvirt did not call back about
      drain();
      checkConnection();
    }
    int n;
    boolean resume = false;
    synchronized (lock) {
      if (received.isEmpty()) {
        if (failure != null && !closed) {
          throw new IOException(failure);
        }
        return -1;
      }
      byte[] head = received.peekFirst();
      n = Math.min(len, head.length - headOffset);
      System.arraycopy(head, headOffset, b, off, n);
      headOffset += n;
      if (headOffset == head.length) {
        received.pollFirst();
        headOffset = 0;
      }
      buffered -= n;
      if (readingPaused && buffered <= MAX_BUFFERED / 2) {
        readingPaused = false;
        resume = true;
      }
    }
    if (resume) {
      updateEvents();
    }
    return n;
  }

  private void write(byte[] b, int off, int len) throws IOException {
    byte[] rest = off == 0 && len == b.length ? b : Arrays.copyOfRange(b, off, off + len);
    while (rest.length > 0) {
      if (!enter()) {
        throw new IOException("channel closed");
      }
      int n;
      try {
        n = lib.virStreamSend(stream, rest, new NativeLong(rest.length));
      } finally {
        exit();
      }
      if (n == -2) { // would block: not from the remote driver today, but allowed
        synchronized (lock) {
          if (failure != null) {
            throw new IOException(failure);
          }
        }
        try {
          Thread.sleep(5);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("interrupted writing a libvirt stream");
        }
        continue;
      }
      if (n < 0) {
        throw new IOException("libvirt stream send failed: " + lib.virGetLastErrorMessage());
      }
      rest = Arrays.copyOfRange(rest, n, rest.length);
    }
  }

  /**
   * Tells libvirt which events to call back for, from the current state. Under {@code eventsLock}
   * from reading the state to the native call, so two updates cannot reach libvirt out of order.
   */
  private void updateEvents() {
    synchronized (eventsLock) {
      int events;
      synchronized (lock) {
        if (closed) {
          return;
        }
        boolean reading = !readingPaused && !eof && failure == null;
        events = EVENT_ERROR | EVENT_HANGUP | (reading ? EVENT_READABLE : 0);
        active++;
      }
      try {
        lib.virStreamEventUpdateCallback(stream, events);
      } finally {
        exit();
      }
    }
  }

  /** Attaches a domain device to a new stream; returns 0 on success, as libvirt does. */
  @FunctionalInterface
  interface Opener {
    int open(LibvirtNative lib, Pointer domain, Pointer stream);
  }

  static LibvirtStreamConnection open(String uri, String domainUuid, String what, Opener opener)
      throws IOException {
    LibvirtNative lib;
    try {
      lib = LibvirtNative.get();
      EventLoop.ensureStarted(); // the stream's callbacks come from it
    } catch (RuntimeException | LibvirtException e) {
      throw new IOException(e.getMessage(), e);
    }
    try {
      RemoteReach.check(uri);
    } catch (dev.agentvm.core.ConnectionException e) {
      throw new IOException(e.getMessage(), e);
    }
    Pointer conn;
    try {
      conn =
          RemoteReach.within(
                  uri,
                  () -> java.util.Optional.ofNullable(lib.virConnectOpen(uri)),
                  late -> late.ifPresent(lib::virConnectClose))
              .orElse(null);
    } catch (LibvirtException | RuntimeException e) {
      throw new IOException(e.getMessage(), e);
    }
    if (conn == null) {
      throw new IOException("cannot connect to " + uri + ": " + lib.virGetLastErrorMessage());
    }
    if (!HostVolumes.isLocal(uri)) {
      // a hung host ends the stream (and a reader waiting on it) instead of holding it forever
      lib.virConnectSetKeepAlive(
          conn, LibvirtSession.KEEPALIVE_INTERVAL_SECONDS, LibvirtSession.KEEPALIVE_MISSES);
    }
    Pointer dom = null;
    Pointer stream = null;
    try {
      dom = lib.virDomainLookupByUUIDString(conn, domainUuid);
      if (dom == null) {
        throw new IOException("no domain " + domainUuid + ": " + lib.virGetLastErrorMessage());
      }
      stream = lib.virStreamNew(conn, VIR_STREAM_NONBLOCK);
      if (stream == null) {
        throw new IOException("cannot create a libvirt stream: " + lib.virGetLastErrorMessage());
      }
      if (opener.open(lib, dom, stream) != 0) {
        throw new IOException("cannot open " + what + ": " + lib.virGetLastErrorMessage());
      }
      LibvirtStreamConnection c = new LibvirtStreamConnection(lib, conn, stream);
      Pointer key = new Pointer(c.id);
      LIVE.put(c.id, c);
      if (lib.virStreamEventAddCallback(
              stream, EVENT_READABLE | EVENT_ERROR | EVENT_HANGUP, ON_EVENT, key, null)
          != 0) {
        LIVE.remove(c.id);
        lib.virStreamAbort(stream);
        throw new IOException(
            "cannot watch the stream of " + what + ": " + lib.virGetLastErrorMessage());
      }
      // best effort: the reader's own look every READ_POLL_MILLIS covers a missing callback
      lib.virConnectRegisterCloseCallback(conn, ON_CLOSE, key, null);
      stream = null;
      conn = null;
      return c;
    } finally {
      if (dom != null) {
        lib.virDomainFree(dom);
      }
      if (stream != null) {
        lib.virStreamFree(stream);
      }
      if (conn != null) {
        lib.virConnectClose(conn);
      }
    }
  }

  @Override
  public InputStream input() {
    return in;
  }

  @Override
  public OutputStream output() {
    return out;
  }

  private boolean enter() {
    synchronized (lock) {
      if (closed) {
        return false;
      }
      active++;
      return true;
    }
  }

  private void exit() {
    synchronized (lock) {
      active--;
      lock.notifyAll();
    }
  }

  @Override
  public void close() {
    synchronized (lock) {
      if (closed) {
        return;
      }
      closed = true;
      received.clear();
      buffered = 0;
      lock.notifyAll(); // a reader waiting for bytes ends
    }
    LIVE.remove(id); // a callback already under way finds nothing
    lib.virStreamEventRemoveCallback(stream);
    lib.virConnectUnregisterCloseCallback(conn, ON_CLOSE);
    lib.virStreamAbort(stream);
    synchronized (lock) {
      long end = System.nanoTime() + 5_000_000_000L;
      while (active > 0 && System.nanoTime() < end) {
        try {
          lock.wait(100);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      if (active > 0) {
        return; // a native call is stuck: leaking the stream is better than freeing it under it
      }
    }
    lib.virStreamFree(stream);
    lib.virConnectClose(conn);
  }
}
