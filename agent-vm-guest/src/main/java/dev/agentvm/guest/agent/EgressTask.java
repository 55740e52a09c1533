package dev.agentvm.guest.agent;

import dev.agentvm.protocol.EgressSpec;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.StreamCredit;
import dev.agentvm.protocol.StreamFrame;
import dev.agentvm.protocol.StreamInbox;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One EGRESS: a listener on the guest's loopback whose connections are relayed to the host as
 * STREAMs, byte for byte. The guest parses nothing of what flows; the host answers the proxy
 * requests. Each connection has two threads: one reads its socket and sends DATA within the host's
 * credit, one writes what the host sent and grants credit back once written.
 */
final class EgressTask {
  private static final long POLL_MILLIS = 1000;

  /**
   * A stream with no byte either way for this long is reset by the guest itself: a host that forgot
   * a stream must not hold a slot here forever.
   */
  static final long IDLE_MILLIS = 15 * 60 * 1000;

  final int id;
  private final EgressSpec spec;
  private final FrameWriter out;
  private final ExecutorService threads;
  private final ServerSocket server;
  private final Map<Integer, Conn> streams = new ConcurrentHashMap<>();
  private final AtomicBoolean stopped = new AtomicBoolean();
  private int nextStream = 1; // the accept thread's

  EgressTask(int id, EgressSpec spec, FrameWriter out, ExecutorService threads) throws IOException {
    this.id = id;
    this.spec = spec;
    this.out = out;
    this.threads = threads;
    ServerSocket s = new ServerSocket();
    try {
      s.setReuseAddress(true);
      s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), spec.port()), 128);
    } catch (IOException e) {
      s.close();
      throw new IOException("cannot listen on 127.0.0.1:" + spec.port() + ": " + e.getMessage(), e);
    }
    this.server = s;
  }

  /** Answers the EGRESS, then accepts connections until {@link #stop}. */
  void run() throws IOException {
    out.write(Frame.response(MessageType.EGRESS, id, new byte[0]));
    while (!stopped.get()) {
      Socket s;
      try {
        s = server.accept();
      } catch (IOException e) {
        if (!stopped.get()) {
          GuestAgent.log("egress listener failed: " + e);
          stop("listener failed: " + e.getMessage());
        }
        return;
      }
      if (streams.size() >= spec.maxStreams()) {
        refuse(s, "the sandbox has " + spec.maxStreams() + " egress connections open already");
        continue;
      }
      Conn c = new Conn(nextStream++, s);
      streams.put(c.sid, c);
      try {
        send(StreamFrame.open(c.sid));
        threads.execute(c::upstream);
        threads.execute(c::downstream);
      } catch (IOException | RuntimeException e) {
        c.abort();
      }
    }
  }

  private static void refuse(Socket s, String why) {
    byte[] body = (why + "\n").getBytes(StandardCharsets.UTF_8);
    String head =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: "
            + body.length
            + "\r\nConnection: close\r\n\r\n";
    try (s) {
      OutputStream o = s.getOutputStream();
      o.write(head.getBytes(StandardCharsets.US_ASCII));
      o.write(body);
      o.flush();
    } catch (IOException e) {
      // the client left first
    }
  }

  /** A STREAM frame from the host; runs on the reader thread, so it never blocks. */
  void onFrame(StreamFrame f) {
    Conn c = streams.get(f.stream());
    if (c == null) {
      return; // ended already: a RESET and the host's frames can cross
    }
    switch (f.op()) {
      case DATA -> {
        if (!c.inbox.offer(f.data())) {
          c.reset("window exceeded");
        }
      }
      case WINDOW -> c.credit.grant(f.credit());
      case CLOSE -> c.inbox.end();
      case RESET -> c.abort();
      case OPEN -> c.reset("the host opened a stream the guest opened");
    }
  }

  /** Closes the listener, resets every stream and sends the last EGRESS; once. */
  void stop(String why) {
    if (!stopped.compareAndSet(false, true)) {
      return;
    }
    try {
      server.close();
    } catch (IOException e) {
      GuestAgent.log("closing the egress listener: " + e);
    }
    streams.values().forEach(c -> c.reset(why));
    try {
      out.write(
          new Frame(
              MessageType.EGRESS.wire(), Frame.FLAG_RESPONSE | Frame.FLAG_END, id, new byte[0]));
    } catch (IOException e) {
      // the host went away: nobody to tell
    }
  }

  private void send(StreamFrame f) throws IOException {
    out.write(Frame.response(MessageType.STREAM, id, f.encode()));
  }

  /** One relayed connection. */
  private final class Conn {
    final int sid;
    final Socket socket;
    final StreamCredit credit = new StreamCredit(spec.window());
    final StreamInbox inbox = new StreamInbox(spec.window());
    final AtomicBoolean gone = new AtomicBoolean();
    volatile long lastActivity = System.nanoTime();
    private int halves; // guarded by this: directions finished; 2 ends the stream

    Conn(int sid, Socket socket) {
      this.sid = sid;
      this.socket = socket;
    }

    /** The client's bytes to the host, within credit; CLOSE at the client's end of stream. */
    void upstream() {
      byte[] buf = new byte[StreamFrame.MAX_DATA];
      try {
        InputStream in = socket.getInputStream();
        while (true) {
          int n = in.read(buf);
          lastActivity = System.nanoTime();
          if (n < 0) {
            send(StreamFrame.close(sid));
            break;
          }
          int off = 0;
          while (off < n) {
            int c = credit.take(n - off, POLL_MILLIS);
            if (c < 0) {
              return; // reset
            }
            if (c > 0) {
              send(StreamFrame.data(sid, Arrays.copyOfRange(buf, off, off + c)));
              off += c;
            }
          }
        }
        halfDone();
      } catch (IOException e) {
        reset("client: " + e.getMessage());
      } catch (InterruptedException e) {
        reset("interrupted");
      }
    }

    /** The host's bytes to the client; WINDOW once written, so a slow client slows its stream. */
    void downstream() {
      try {
        OutputStream o = socket.getOutputStream();
        while (true) {
          byte[] chunk = inbox.take(POLL_MILLIS);
          if (StreamInbox.timedOut(chunk)) {
            if (gone.get()) {
              return;
            }
            if (System.nanoTime() - lastActivity > IDLE_MILLIS * 1_000_000L) {
              reset("idle for " + IDLE_MILLIS / 60_000 + " minutes");
              return;
            }
            continue;
          }
          lastActivity = System.nanoTime();
          if (StreamInbox.isEnd(chunk)) {
            socket.shutdownOutput();
            break;
          }
          o.write(chunk);
          o.flush();
          send(StreamFrame.window(sid, chunk.length));
        }
        halfDone();
      } catch (IOException e) {
        if (!gone.get()) {
          reset("client: " + e.getMessage());
        }
      } catch (InterruptedException e) {
        reset("interrupted");
      }
    }

    private void halfDone() {
      boolean both;
      synchronized (this) {
        both = ++halves == 2;
      }
      if (both) {
        abort();
      }
    }

    /** Ends the stream here and tells the host. */
    void reset(String why) {
      if (!gone.get()) {
        try {
          send(StreamFrame.reset(sid, why));
        } catch (IOException e) {
          // the host went away
        }
      }
      abort();
    }

    /** Ends the stream here without a word (the host reset it, or both sides closed). */
    void abort() {
      if (!gone.compareAndSet(false, true)) {
        return;
      }
      streams.remove(sid, this);
      credit.close();
      inbox.fail("closed");
      try {
        socket.close();
      } catch (IOException e) {
        // nothing left to do
      }
    }
  }
}
