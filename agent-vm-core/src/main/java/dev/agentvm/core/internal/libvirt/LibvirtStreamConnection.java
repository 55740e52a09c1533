package dev.agentvm.core.internal.libvirt;

import com.sun.jna.NativeLong;
import com.sun.jna.Pointer;
import dev.agentvm.core.agent.AgentTransport;
import dev.agentvm.core.internal.io.BlockStreams;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A domain's virtio-serial channel reached through libvirt ({@code virDomainOpenChannel}) instead
 * of its UNIX socket, so it works wherever the libvirt URI does (remote hosts included). Each
 * connection has its own libvirt connection: a blocking stream read must not stall other calls.
 */
final class LibvirtStreamConnection implements AgentTransport.Connection {
  private final LibvirtNative lib;
  private final Pointer conn;
  private final Pointer stream;
  private final AtomicBoolean closed = new AtomicBoolean();

  /** Native calls in flight; the stream is freed only when none is. Guarded by {@code this}. */
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
            if (len == 0) {
              return 0;
            }
            if (!enter()) {
              return -1;
            }
            byte[] buf = off == 0 ? b : new byte[len];
            int n;
            try {
              n = lib.virStreamRecv(stream, buf, new NativeLong(len));
            } finally {
              exit();
            }
            if (n == 0) {
              return -1;
            }
            if (n < 0) {
              if (closed.get()) {
                return -1;
              }
              throw new IOException(
                  "libvirt stream receive failed: " + lib.virGetLastErrorMessage());
            }
            if (buf != b) {
              System.arraycopy(buf, 0, b, off, n);
            }
            return n;
          }
        };
    this.out =
        new BlockStreams.Out() {

          @Override
          public void write(byte[] b, int off, int len) throws IOException {
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
              if (n < 0) {
                throw new IOException(
                    "libvirt stream send failed: " + lib.virGetLastErrorMessage());
              }
              rest = Arrays.copyOfRange(rest, n, rest.length);
            }
          }
        };
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
    } catch (RuntimeException e) {
      throw new IOException(e.getMessage(), e);
    }
    try {
      RemoteReach.check(uri);
    } catch (dev.agentvm.core.ConnectionException e) {
      throw new IOException(e.getMessage(), e);
    }
    Pointer conn = lib.virConnectOpen(uri);
    if (conn == null) {
      throw new IOException("cannot connect to " + uri + ": " + lib.virGetLastErrorMessage());
    }
    if (!HostVolumes.isLocal(uri)) {
      // a hung host ends the stream (and a reader blocked on it) instead of holding it forever
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
      stream = lib.virStreamNew(conn, 0);
      if (stream == null) {
        throw new IOException("cannot create a libvirt stream: " + lib.virGetLastErrorMessage());
      }
      if (opener.open(lib, dom, stream) != 0) {
        throw new IOException("cannot open " + what + ": " + lib.virGetLastErrorMessage());
      }
      LibvirtStreamConnection c = new LibvirtStreamConnection(lib, conn, stream);
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

  private synchronized boolean enter() {
    if (closed.get()) {
      return false;
    }
    active++;
    return true;
  }

  private synchronized void exit() {
    active--;
    notifyAll();
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    lib.virStreamAbort(stream); // wakes a reader blocked in virStreamRecv
    synchronized (this) {
      long end = System.nanoTime() + 5_000_000_000L;
      while (active > 0 && System.nanoTime() < end) {
        try {
          wait(100);
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
