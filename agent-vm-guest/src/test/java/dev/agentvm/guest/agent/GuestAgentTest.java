package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameCodec;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.HelloRequest;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.MessageType;
import java.io.InputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The agent's request loop over in-memory pipes: bad input must never stop it. */
class GuestAgentTest {
  @Test
  void survivesGarbageUnknownTypesAndBadVersionsThenAnswersHello() throws Exception {
    PipedOutputStream toAgent = new PipedOutputStream();
    PipedInputStream agentIn = new PipedInputStream(toAgent, 1 << 16);
    PipedInputStream fromAgent = new PipedInputStream(1 << 16);
    PipedOutputStream agentOut = new PipedOutputStream(fromAgent);
    GuestAgent agent = new GuestAgent(Path.of("/dev/null"), 1000, 2000);
    Thread t =
        new Thread(
            () -> {
              try {
                agent.serveConnection(agentIn, new FrameWriter(agentOut));
              } catch (Exception e) {
                // interrupted at the end of the test
              }
            });
    t.setDaemon(true);
    t.start();
    FrameReader replies = new FrameReader(fromAgent);

    toAgent.write("this is not a frame at all, just noise".getBytes(StandardCharsets.UTF_8));
    toAgent.flush();
    Frame err = replies.read();
    assertEquals(MessageType.ERROR.wire(), err.type());
    assertEquals(ErrorCode.BAD_MAGIC, ErrorPayload.decode(err.payload()).code());

    FrameWriter host = new FrameWriter(toAgent);
    host.write(new Frame(0xEE, 0, 5, new byte[0]));
    Frame unknown = replies.read();
    assertEquals(5, unknown.requestId());
    assertEquals(ErrorCode.UNKNOWN_TYPE, ErrorPayload.decode(unknown.payload()).code());

    host.write(Frame.request(MessageType.HELLO, 6, new HelloRequest(7, 9, "future host").encode()));
    Frame badVersion = replies.read();
    assertEquals(ErrorCode.UNSUPPORTED_VERSION, ErrorPayload.decode(badVersion.payload()).code());

    host.write(Frame.request(MessageType.HELLO, 7, new byte[] {1})); // truncated payload
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, ErrorPayload.decode(replies.read().payload()).code());

    byte[] corrupt = FrameCodec.encode(Frame.request(MessageType.PING, 8, new byte[] {9}));
    corrupt[corrupt.length - 1] ^= 1;
    toAgent.write(corrupt);
    assertEquals(ErrorCode.BAD_CHECKSUM, ErrorPayload.decode(replies.read().payload()).code());

    host.write(Frame.request(MessageType.HELLO, 9, new HelloRequest(1, 1, "host").encode()));
    Frame hello = replies.read();
    assertEquals(9, hello.requestId());
    assertTrue(hello.isResponse());
    HelloResponse h = HelloResponse.decode(hello.payload());
    assertEquals(1, h.version());
    assertEquals(1000, h.initUptimeMillis());

    host.write(Frame.request(MessageType.PING, 10, new byte[] {4, 2}));
    Frame pong = replies.read();
    assertEquals(MessageType.PONG.wire(), pong.type());
    assertEquals(2, pong.payload().length);
    t.interrupt();
  }

  /**
   * A frame whose rest never comes (a host that went away without the guest noticing) is dropped
   * after the stall time, and the next host's frames are served.
   */
  @Test
  void aFrameThatStopsHalfWayIsDroppedAndTheNextOneServed() throws Exception {
    Guarded g = new Guarded(5_000);
    PipedOutputStream toAgent = g.toAgent;
    FrameReader replies = g.replies;
    Thread t = g.thread;
    // a valid header announcing 1000 payload bytes, and only 10 of them
    byte[] big = FrameCodec.encode(Frame.request(MessageType.PING, 1, new byte[1000]));
    toAgent.write(big, 0, FrameCodec.HEADER_SIZE + 10);
    toAgent.flush();
    Thread.sleep(600); // past the stall time: the partial frame is dropped
    FrameWriter host = new FrameWriter(toAgent);
    host.write(Frame.request(MessageType.PING, 2, new byte[] {7}));
    Frame pong = replies.read();
    assertEquals(MessageType.PONG.wire(), pong.type());
    assertEquals(2, pong.requestId());
    t.interrupt();
  }

  /**
   * A new host repeating its HELLO every few seconds must not keep a half frame of the last host
   * alive: the frame has a deadline from its first byte, whatever trickles in after it.
   */
  @Test
  void aHalfFrameFedByATrickleIsDroppedAtItsDeadline() throws Exception {
    Guarded g = new Guarded(1_000);
    PipedOutputStream toAgent = g.toAgent;
    PipedInputStream fromAgent = g.fromAgent;
    FrameReader replies = g.replies;
    Thread t = g.thread;
    byte[] big = FrameCodec.encode(Frame.request(MessageType.PING, 1, new byte[100_000]));
    toAgent.write(big, 0, FrameCodec.HEADER_SIZE + 10);
    toAgent.flush();
    FrameWriter host = new FrameWriter(toAgent);
    long start = System.nanoTime();
    Frame pong = null;
    int id = 100;
    // pings every 200 ms (inside the 300 ms stall time): each is eaten by the half frame until
    // its 1 s deadline passes; one of the later ones is answered
    while (pong == null) {
      assertTrue(System.nanoTime() - start < 10_000_000_000L, "no PONG within 10 s");
      host.write(Frame.request(MessageType.PING, ++id, new byte[] {7}));
      Thread.sleep(200);
      while (fromAgent.available() > 0) {
        Frame f = replies.read();
        if (f.type() == MessageType.PONG.wire()) {
          pong = f;
        }
      }
    }
    assertTrue(pong.requestId() > 100, "a later ping is answered: " + pong);
    t.interrupt();
  }

  /**
   * A port whose read fails (an I/O error of the device) ends the connection with that error, so
   * that the agent reopens the port, instead of leaving it waiting for bytes nobody reads any more.
   */
  @Test
  void aPortWhoseReadFailsEndsTheConnectionToBeReopened() throws Exception {
    readFailureEndsTheConnection(new java.io.IOException("EIO"));
  }

  /** So does a reader thread that fails otherwise (a native read that throws, out of memory). */
  @Test
  void aReaderThatFailsOtherwiseEndsTheConnectionToo() throws Exception {
    readFailureEndsTheConnection(new IllegalStateException("EIO, unexpectedly"));
  }

  private static void readFailureEndsTheConnection(Exception failure) throws Exception {
    byte[] ping = FrameCodec.encode(Frame.request(MessageType.PING, 1, new byte[] {5}));
    InputStream device =
        new InputStream() {
          private boolean sent;

          @Override
          public int read() throws java.io.IOException {
            return read(new byte[1], 0, 1);
          }

          @Override
          public int read(byte[] b, int off, int len) throws java.io.IOException {
            if (!sent) {
              sent = true;
              System.arraycopy(ping, 0, b, off, ping.length);
              return ping.length;
            }
            if (failure instanceof java.io.IOException io) {
              throw io;
            }
            throw (RuntimeException) failure;
          }
        };
    PipedInputStream fromAgent = new PipedInputStream(1 << 16);
    PipedOutputStream agentOut = new PipedOutputStream(fromAgent);
    GuestAgent agent = new GuestAgent(Path.of("/dev/null"), 1000, 2000);
    java.util.concurrent.CompletableFuture<Throwable> ended =
        new java.util.concurrent.CompletableFuture<>();
    Thread t =
        new Thread(
            () -> {
              try {
                agent.serveConnection(
                    new StallGuard(device, 20, 300, 1000), new FrameWriter(agentOut));
                ended.complete(new AssertionError("served on"));
              } catch (Exception e) {
                ended.complete(e);
              }
            });
    t.setDaemon(true);
    t.start();
    Frame pong = new FrameReader(fromAgent).read();
    assertEquals(MessageType.PONG.wire(), pong.type(), "the frame before the failure is served");
    Throwable e = ended.get(10, java.util.concurrent.TimeUnit.SECONDS);
    assertTrue(e instanceof java.io.IOException, "the connection ends with the error: " + e);
    assertTrue(e.getMessage().contains("EIO"), e.getMessage());
  }

  /**
   * An agent serving piped streams through a StallGuard (300 ms idle bound, the given deadline).
   */
  private static final class Guarded {
    final PipedOutputStream toAgent = new PipedOutputStream();
    final PipedInputStream fromAgent = new PipedInputStream(1 << 16);
    final FrameReader replies = new FrameReader(fromAgent);
    final Thread thread;

    Guarded(long frameMillis) throws java.io.IOException {
      PipedInputStream agentIn = new PipedInputStream(toAgent, 1 << 16);
      PipedOutputStream agentOut = new PipedOutputStream(fromAgent);
      GuestAgent agent = new GuestAgent(Path.of("/dev/null"), 1000, 2000);
      StallGuard guarded = new StallGuard(agentIn, 20, 300, frameMillis);
      thread =
          new Thread(
              () -> {
                try {
                  agent.serveConnection(guarded, new FrameWriter(agentOut));
                } catch (Exception e) {
                  // interrupted at the end of the test
                }
              });
      thread.setDaemon(true);
      thread.start();
    }
  }
}
