package dev.agentvm.network.egress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.UnixSocketTransport;
import dev.agentvm.protocol.EgressSpec;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.Protocol;
import dev.agentvm.protocol.StreamFrame;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The host's proxy against a guest that breaks the rules: a peer that speaks the wire format by
 * hand (what root in a guest can do) and does what the real agent never would. What is checked is
 * the host's outcome: streams reset with the reason, records written, nothing left open. The real
 * agent and real guests are in SandboxEgressIT.
 */
@Timeout(60)
class EgressProxyTest {
  @TempDir Path tmp;
  private ServerSocketChannel listener;
  private FakeGuest guest;
  private AgentClient agent;
  private ServerSocket server;
  private final BlockingQueue<Socket> accepted = new LinkedBlockingQueue<>();

  /** A hand-written guest: answers HELLO and EGRESS, then sends what the test tells it to. */
  private static final class FakeGuest {
    final FrameReader in;
    final FrameWriter out;
    int egressId;

    FakeGuest(SocketChannel ch) {
      // not Channels.newInputStream/newOutputStream: those two lock each other out on one channel
      this.in =
          new FrameReader(
              new java.io.InputStream() {
                @Override
                public int read() throws IOException {
                  byte[] b = new byte[1];
                  return read(b, 0, 1) < 0 ? -1 : b[0] & 0xff;
                }

                @Override
                public int read(byte[] b, int off, int len) throws IOException {
                  return ch.read(java.nio.ByteBuffer.wrap(b, off, len));
                }
              });
      this.out =
          new FrameWriter(
              new java.io.OutputStream() {
                @Override
                public void write(int b) throws IOException {
                  write(new byte[] {(byte) b}, 0, 1);
                }

                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                  java.nio.ByteBuffer buf = java.nio.ByteBuffer.wrap(b, off, len);
                  while (buf.hasRemaining()) {
                    ch.write(buf);
                  }
                }
              });
    }

    /** Reads the next request, answering every HELLO on the way. */
    Frame nextRequest() throws IOException {
      while (true) {
        Frame f = in.read();
        if (f.type() != MessageType.HELLO.wire()) {
          return f;
        }
        out.write(
            Frame.response(
                MessageType.HELLO,
                f.requestId(),
                new HelloResponse(Protocol.VERSION, "fake", List.of("egress"), "k", 1, 2, 3)
                    .encode()));
      }
    }

    void send(StreamFrame f) throws IOException {
      out.write(Frame.response(MessageType.STREAM, egressId, f.encode()));
    }

    /** The next STREAM frame from the host, skipping WINDOWs when asked. */
    StreamFrame next(boolean skipWindows) throws IOException {
      while (true) {
        Frame f = in.read();
        if (f.type() == MessageType.STREAM.wire()) {
          StreamFrame s = StreamFrame.decode(f.payload());
          if (!(skipWindows && s.op() == StreamFrame.Op.WINDOW)) {
            return s;
          }
        }
      }
    }

    /** Frames read while waiting for another stream's, kept for {@link #readAll}. */
    private final java.util.ArrayDeque<StreamFrame> heldBack = new java.util.ArrayDeque<>();

    /** The next frame for {@code stream}, keeping the other streams' frames for later. */
    StreamFrame nextFor(int stream) throws IOException {
      while (true) {
        StreamFrame s = next(true);
        if (s.stream() == stream) {
          return s;
        }
        heldBack.addLast(s);
      }
    }

    /** Everything the host sends on {@code stream} until it closes or resets it. */
    String readAll(int stream) throws IOException {
      ByteArrayOutputStream b = new ByteArrayOutputStream();
      while (true) {
        StreamFrame s = heldBack.isEmpty() ? next(true) : heldBack.pollFirst();
        if (s.stream() != stream) {
          continue;
        }
        switch (s.op()) {
          case DATA -> b.write(s.data());
          case CLOSE -> {
            return b.toString(StandardCharsets.UTF_8);
          }
          case RESET -> {
            return b.toString(StandardCharsets.UTF_8) + "|RESET " + s.reason();
          }
          default -> {}
        }
      }
    }
  }

  @BeforeEach
  void setUp() throws Exception {
    Path sock = tmp.resolve("agent.sock");
    listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    listener.bind(UnixDomainSocketAddress.of(sock));
    server = new ServerSocket(0, 16, InetAddress.getLoopbackAddress());
    Thread acceptor =
        new Thread(
            () -> {
              while (!server.isClosed()) {
                try {
                  accepted.add(server.accept());
                } catch (IOException e) {
                  return;
                }
              }
            });
    acceptor.setDaemon(true);
    acceptor.start();
    java.util.concurrent.CompletableFuture<AgentClient> c =
        java.util.concurrent.CompletableFuture.supplyAsync(
            () -> {
              try {
                return AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(20));
              } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            });
    guest = new FakeGuest(listener.accept());
    Frame hello = guest.in.read();
    assertEquals(MessageType.HELLO.wire(), hello.type());
    guest.out.write(
        Frame.response(
            MessageType.HELLO,
            hello.requestId(),
            new HelloResponse(Protocol.VERSION, "fake", List.of("egress"), "k", 1, 2, 3).encode()));
    agent = c.get(20, TimeUnit.SECONDS);
  }

  @AfterEach
  void tearDown() throws IOException {
    agent.close();
    listener.close();
    server.close();
    for (Socket s : accepted) {
      s.close();
    }
  }

  private EgressProxy attach(EgressLimits limits) throws Exception {
    return attach(limits, false);
  }

  private EgressProxy attach(EgressLimits limits, boolean raw) throws Exception {
    EgressProxy proxy =
        EgressProxy.builder(
                EgressPolicy.builder()
                    .allowDomain("ok.test")
                    .ports(server.getLocalPort())
                    .allowBlock("127.0.0.1/32")
                    .rawTunnelPorts(raw ? new int[] {server.getLocalPort()} : new int[0])
                    .build())
            .name("fake")
            .resolver(n -> List.of(InetAddress.getByAddress(n, new byte[] {127, 0, 0, 1})))
            .limits(limits)
            .build();
    java.util.concurrent.CompletableFuture<Void> a =
        java.util.concurrent.CompletableFuture.runAsync(
            () -> {
              try {
                proxy.attach(agent, Duration.ofSeconds(20));
              } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
            });
    Frame egress = guest.nextRequest();
    assertEquals(MessageType.EGRESS.wire(), egress.type());
    EgressSpec spec = EgressSpec.decode(egress.payload());
    assertEquals(limits.maxConnections(), spec.maxStreams());
    guest.egressId = egress.requestId();
    guest.out.write(Frame.response(MessageType.EGRESS, guest.egressId, new byte[0]));
    a.get(20, TimeUnit.SECONDS);
    return proxy;
  }

  private void request(int stream, String head) throws IOException {
    guest.send(StreamFrame.open(stream));
    guest.send(StreamFrame.data(stream, head.getBytes(StandardCharsets.ISO_8859_1)));
  }

  private static void awaitNoConnections(EgressProxy p) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (p.openConnections() > 0 && System.nanoTime() < end) {
      Thread.sleep(20);
    }
    assertEquals(0, p.openConnections(), "every slot is free again");
  }

  private static EgressRecord lastRecord(EgressProxy p) throws InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (p.log().isEmpty() && System.nanoTime() < end) {
      Thread.sleep(20);
    }
    List<EgressRecord> log = p.log();
    return log.get(log.size() - 1);
  }

  @Test
  void aGuestThatSendsBeyondItsWindowLosesTheStream() throws Exception {
    try (EgressProxy p = attach(EgressLimits.defaults(), true)) {
      request(1, "CONNECT ok.test:" + server.getLocalPort() + " HTTP/1.1\r\n\r\n");
      Socket s = accepted.poll(10, TimeUnit.SECONDS);
      assertTrue(s != null, "the host connected");
      // the server never reads: once the sockets' buffers are full the guest may send 256 KiB
      // more, and sends far more (in the background, until the host has had enough)
      java.util.concurrent.atomic.AtomicBoolean stop =
          new java.util.concurrent.atomic.AtomicBoolean();
      Thread flood =
          new Thread(
              () -> {
                byte[] chunk = new byte[StreamFrame.MAX_DATA];
                try {
                  for (int i = 0; i < 4096 && !stop.get(); i++) {
                    guest.send(StreamFrame.data(1, chunk));
                  }
                } catch (IOException e) {
                  // the channel went away: the test will say so
                }
              });
      flood.setDaemon(true);
      flood.start();
      StreamFrame f = guest.next(true);
      while (f.op() != StreamFrame.Op.RESET) {
        f = guest.next(true);
      }
      stop.set(true);
      assertEquals("window exceeded", f.reason());
      EgressRecord r = lastRecord(p);
      assertEquals("window exceeded", r.end());
      awaitNoConnections(p);
    }
  }

  @Test
  void limitsEndConnectionsWithTheirReason() throws Exception {
    EgressLimits limits =
        new EgressLimits(
            1, 100, 1L << 30, Duration.ofSeconds(3), Duration.ofSeconds(5), Duration.ofMillis(500));
    try (EgressProxy p = attach(limits, true)) {
      // a request that never ends its head: cut at the request timeout
      guest.send(StreamFrame.open(1));
      guest.send(
          StreamFrame.data(
              1, "GET http://ok.test/ HTTP/1.1\r\n".getBytes(StandardCharsets.US_ASCII)));
      String cut = guest.readAll(1);
      assertTrue(cut.contains("RESET no whole proxy request"), cut);
      // its slot is held until its worker has finished, which may be just after the RESET
      awaitNoConnections(p);

      // a second stream while one is open: refused at the host's own limit
      request(2, "CONNECT ok.test:" + server.getLocalPort() + " HTTP/1.1\r\n\r\n");
      guest.send(StreamFrame.open(3));
      // stream 2's frames (its answer, even its idle end on a slow host) are kept for below
      StreamFrame refused = guest.nextFor(3);
      assertEquals(StreamFrame.Op.RESET, refused.op());
      assertTrue(refused.reason().contains("egress limit"), refused.reason());

      // stream 2 goes idle: ended after the idle timeout; more than 100 bytes would end it too
      String idle = guest.readAll(2);
      assertTrue(idle.startsWith("HTTP/1.1 200 Connection established"), idle);
      assertTrue(idle.contains("RESET idle for"), idle);
      awaitNoConnections(p);

      request(4, "CONNECT ok.test:" + server.getLocalPort() + " HTTP/1.1\r\n\r\n");
      guest.send(StreamFrame.data(4, new byte[200]));
      String big = guest.readAll(4);
      assertTrue(big.contains("RESET egress limit: more than 100 bytes"), big);
    }
  }

  @Test
  void aDeniedOrMalformedRequestIsAnsweredAndEnded() throws Exception {
    try (EgressProxy p = attach(EgressLimits.defaults())) {
      request(1, "GET http://denied.test:" + server.getLocalPort() + "/ HTTP/1.1\r\n\r\n");
      String denied = guest.readAll(1);
      assertTrue(denied.startsWith("HTTP/1.1 403 Forbidden"), denied);
      assertTrue(
          denied.endsWith("egress denied (domain): denied.test is not an allowed domain\n"),
          denied);
      guest.send(StreamFrame.close(1));
      request(2, "BREW coffee://pot HTTP/1.1\r\n\r\n");
      String bad = guest.readAll(2);
      assertTrue(bad.startsWith("HTTP/1.1 400 Bad Request"), bad);
      guest.send(StreamFrame.close(2));
      request(
          3,
          "GET http://ok.test:"
              + server.getLocalPort()
              + "/x HTTP/1.1\r\nHost: ok.test:"
              + server.getLocalPort()
              + "\r\n\r\n");
      Socket s = accepted.poll(10, TimeUnit.SECONDS);
      assertTrue(s != null);
      s.getOutputStream()
          .write(
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".getBytes(StandardCharsets.US_ASCII));
      String head = new String(s.getInputStream().readNBytes(20), StandardCharsets.US_ASCII);
      assertEquals("GET /x HTTP/1.1\r\nHos", head);
      s.close();
      assertTrue(guest.readAll(3).endsWith("hi"));
      guest.send(StreamFrame.close(3));
      // a client that half-closes right after its request still gets the whole answer, no RESET
      request(
          9,
          "GET http://ok.test:"
              + server.getLocalPort()
              + "/y HTTP/1.1\r\nHost: ok.test:"
              + server.getLocalPort()
              + "\r\n\r\n");
      guest.send(StreamFrame.close(9));
      Socket s9 = accepted.poll(10, TimeUnit.SECONDS);
      assertTrue(s9 != null);
      byte[] answer = new byte[100_000];
      java.util.Arrays.fill(answer, (byte) 'z');
      s9.getOutputStream().write(answer);
      s9.close();
      String got = guest.readAll(9);
      assertEquals(new String(answer, StandardCharsets.UTF_8), got, "all of it, and a CLOSE");
      // a stream opened twice is reset, and the guest's resets end streams quietly
      request(4, "CONNECT ok.test:" + server.getLocalPort() + " HTTP/1.1\r\n\r\n");
      guest.send(StreamFrame.open(4));
      String twice = guest.readAll(4);
      assertTrue(twice.contains("RESET the guest opened stream 4 twice"), twice);
      // a tunnel must start with TLS naming its host: plain HTTP inside one is refused
      request(6, "CONNECT ok.test:" + server.getLocalPort() + " HTTP/1.1\r\n\r\n");
      guest.send(
          StreamFrame.data(
              6, "GET / HTTP/1.1\r\nHost: other\r\n\r\n".getBytes(StandardCharsets.US_ASCII)));
      String tunnel = guest.readAll(6);
      assertTrue(tunnel.contains("RESET egress denied (sni): a tunnel to port"), tunnel);
      // a chunked body is not forwarded; an oversized head is answered 431
      request(
          7,
          "POST http://ok.test:"
              + server.getLocalPort()
              + "/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
      assertTrue(guest.readAll(7).startsWith("HTTP/1.1 411"));
      guest.send(StreamFrame.close(7));
      guest.send(StreamFrame.open(8));
      byte[] junk = new byte[StreamFrame.MAX_DATA];
      java.util.Arrays.fill(junk, (byte) 'a');
      guest.send(StreamFrame.data(8, junk));
      assertTrue(guest.readAll(8).startsWith("HTTP/1.1 431"));
      guest.send(StreamFrame.close(8));
      p.policy(EgressPolicy.none());
      request(5, "CONNECT ok.test:" + server.getLocalPort() + " HTTP/1.1\r\n\r\n");
      assertTrue(guest.readAll(5).startsWith("HTTP/1.1 403"), "the new policy holds");
      guest.send(StreamFrame.close(5));
      long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (p.log().size() < 5 && System.nanoTime() < end) {
        Thread.sleep(20);
      }
      assertTrue(p.log().stream().anyMatch(r -> r.allowed() && r.bytesIn() > 0), "" + p.log());
    }
  }
}
