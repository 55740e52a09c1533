package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentChannelClosedException;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.AgentErrorException;
import dev.agentvm.core.agent.AgentTimeoutException;
import dev.agentvm.core.agent.UnixSocketTransport;
import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.MessageType;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The host client's request/answer logic against a scripted peer on a UNIX socket. (The real guest
 * agent on a real VM is covered by VmLifecycleIT.)
 */
class AgentClientTest {
  private Path dir;
  private Path sock;
  private ServerSocketChannel server;

  @BeforeEach
  void setUp() throws IOException {
    dir = Files.createTempDirectory("agentvm-client-test");
    sock = dir.resolve("a.sock");
    server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of(sock));
  }

  @AfterEach
  void tearDown() throws IOException {
    server.close();
    Files.deleteIfExists(sock);
    Files.delete(dir);
  }

  /** Serves one connection: answers HELLO, then hands every other frame to {@code handler}. */
  private Thread peer(BiConsumer<Frame, FrameWriter> handler) {
    Thread t =
        new Thread(
            () -> {
              try (SocketChannel c = server.accept()) {
                FrameReader r = new FrameReader(Channels.newInputStream(c));
                FrameWriter w = new FrameWriter(Channels.newOutputStream(c));
                Frame f;
                while ((f = r.read()) != null) {
                  if (f.type() == MessageType.HELLO.wire()) {
                    w.write(
                        Frame.response(
                            MessageType.HELLO,
                            f.requestId(),
                            new HelloResponse(1, "fake", List.of(), "k", 1, 2, 3).encode()));
                  } else {
                    handler.accept(f, w);
                  }
                }
              } catch (IOException | java.io.UncheckedIOException e) {
                // the client went away, or the scripted peer died on purpose
              }
            });
    t.setDaemon(true);
    t.start();
    return t;
  }

  @Test
  void aGuestsErrorTextIsCutAndEscapedBeforeItReachesAnExceptionMessage() {
    String hostile = "line one\r\nFAKE LOG LINE \u001b[31m" + "x".repeat(100_000);
    String m = new AgentErrorException(ErrorCode.INTERNAL, hostile).getMessage();
    assertTrue(m.length() < 700, "message of " + m.length() + " chars");
    assertTrue(m.indexOf('\n') < 0 && m.indexOf('\r') < 0 && m.indexOf('\u001b') < 0, m);
  }

  @Test
  void correlatesAnswersByRequestIdEvenOutOfOrder() throws Exception {
    java.util.concurrent.BlockingQueue<Frame> held =
        new java.util.concurrent.LinkedBlockingQueue<>();
    peer(
        (f, w) -> {
          // hold the first ping, answer the second first, then the first
          held.add(f);
          if (held.size() == 2) {
            try {
              Frame first = held.poll();
              Frame second = held.poll();
              w.write(Frame.response(MessageType.PONG, second.requestId(), second.payload()));
              w.write(Frame.response(MessageType.PONG, first.requestId(), first.payload()));
            } catch (IOException e) {
              throw new java.io.UncheckedIOException(e);
            }
          }
        });
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      assertEquals("fake", c.hello().agentVersion());
      var a = java.util.concurrent.CompletableFuture.supplyAsync(() -> call(c, new byte[] {1}));
      Thread.sleep(100);
      var b = java.util.concurrent.CompletableFuture.supplyAsync(() -> call(c, new byte[] {2}));
      assertEquals(1, a.get().payload()[0]);
      assertEquals(2, b.get().payload()[0]);
    }
  }

  private static Frame call(AgentClient c, byte[] p) {
    try {
      return c.call(MessageType.PING, p, Duration.ofSeconds(5));
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  @Test
  void errorAnswerBecomesAgentErrorException() throws Exception {
    peer(
        (f, w) -> {
          try {
            w.write(
                Frame.response(
                    MessageType.ERROR,
                    f.requestId(),
                    new ErrorPayload(ErrorCode.UNSUPPORTED_OPERATION, "no").encode()));
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      AgentErrorException e =
          assertThrows(AgentErrorException.class, () -> c.ping(Duration.ofSeconds(5)));
      assertEquals(ErrorCode.UNSUPPORTED_OPERATION, e.code());
    }
  }

  @Test
  void silentPeerTimesOutWithinDeadline() throws Exception {
    peer((f, w) -> {});
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      long t0 = System.nanoTime();
      assertThrows(AgentTimeoutException.class, () -> c.ping(Duration.ofMillis(300)));
      assertTrue(System.nanoTime() - t0 < 3_000_000_000L);
    }
  }

  @Test
  void peerClosingFailsPendingCallsAtOnce() throws Exception {
    peer(
        (f, w) -> {
          throw new java.io.UncheckedIOException(new IOException("peer dies"));
        });
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      long t0 = System.nanoTime();
      assertThrows(AgentChannelClosedException.class, () -> c.ping(Duration.ofSeconds(30)));
      assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "should not wait for the deadline");
      assertThrows(AgentChannelClosedException.class, () -> c.ping(Duration.ofSeconds(1)));
    }
  }

  @Test
  void getFileOnAClosedChannelLeavesNoPartialFile() throws Exception {
    peer((f, w) -> {});
    Path target = dir.resolve("out").resolve("file.bin");
    AgentClient c = AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5));
    c.close();
    assertThrows(
        AgentChannelClosedException.class, () -> c.getFile("/x", target, Duration.ofSeconds(5)));
    try (var files = Files.list(target.getParent())) {
      assertEquals(List.of(), files.toList());
    }
    Files.delete(target.getParent());
  }

  @Test
  void aGuestThatSendsMoreThanTheLimitIsCutThereAndLeavesNoFile() throws Exception {
    java.util.concurrent.atomic.AtomicLong sent = new java.util.concurrent.atomic.AtomicLong();
    peer(
        (f, w) -> {
          try {
            // a lying guest: ignores the limit in the request and streams 1 MiB, then a header
            byte[] chunk = new byte[64 * 1024];
            for (int i = 0; i < 16; i++) {
              w.write(
                  new Frame(
                      MessageType.FILE_DATA.wire(),
                      Frame.FLAG_RESPONSE | (i == 15 ? Frame.FLAG_END : 0),
                      f.requestId(),
                      chunk));
              sent.addAndGet(chunk.length);
            }
            w.write(
                Frame.response(
                    MessageType.GET_FILE,
                    f.requestId(),
                    new dev.agentvm.protocol.FileHeader("/x", 0644, 1 << 20, "00").encode()));
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
    Path target = dir.resolve("got");
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      dev.agentvm.core.agent.AgentLimitException e =
          assertThrows(
              dev.agentvm.core.agent.AgentLimitException.class,
              () -> c.getFile("/x", target, Duration.ofSeconds(10), 100_000));
      assertTrue(e.getMessage().contains("100000"), e.getMessage());
    }
    try (var left = Files.list(dir)) {
      assertEquals(
          List.of("a.sock"),
          left.map(p -> p.getFileName().toString()).sorted().toList(),
          "neither the file nor a partial copy is left");
    }
  }

  @Test
  void noEndpointTimesOutWithClearMessage() {
    AgentTimeoutException e =
        assertThrows(
            AgentTimeoutException.class,
            () ->
                AgentClient.connect(
                    new UnixSocketTransport(dir.resolve("missing.sock")), Duration.ofMillis(300)));
    assertTrue(e.getMessage().contains("missing.sock"), e.getMessage());
  }

  /**
   * Says "ready" to a PUT_FILE, then reads nothing more: its socket buffers fill and the client's
   * writes block.
   */
  private Thread stalledPeer() {
    return peer(
        (f, w) -> {
          try {
            if (f.type() == MessageType.PUT_FILE.wire()) {
              w.write(Frame.response(MessageType.PUT_FILE, f.requestId(), new byte[0]));
            }
            Thread.sleep(Long.MAX_VALUE);
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        });
  }

  @Test
  void aPeerThatStopsReadingCannotHangTheClient() throws Exception {
    stalledPeer();
    Path big = dir.resolve("big.bin");
    Files.write(big, new byte[8 << 20]);
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      c.writeStallLimit(Duration.ofSeconds(2));
      long t0 = System.nanoTime();
      assertThrows(
          IOException.class, () -> c.putFile(big, "/tmp/big.bin", 0644, Duration.ofSeconds(1)));
      assertTrue(System.nanoTime() - t0 < 3_000_000_000L, "putFile kept its deadline");
      // the heartbeat's ping never blocks on the stalled writer
      long t1 = System.nanoTime();
      var ping = c.pingAsync();
      assertTrue(System.nanoTime() - t1 < 500_000_000L, "pingAsync returned at once");
      // the stall limit passes: the channel is closed and every call fails at once
      long deadline = System.nanoTime() + 10_000_000_000L;
      while (c.isOpen() && System.nanoTime() < deadline) {
        try {
          c.ping(Duration.ofSeconds(3));
        } catch (IOException expected) {
          // timeouts until the stall limit closes the channel
        }
      }
      assertTrue(!c.isOpen(), "a stalled channel is closed");
      assertThrows(
          java.util.concurrent.ExecutionException.class,
          () -> ping.get(1, java.util.concurrent.TimeUnit.SECONDS));
      assertThrows(AgentChannelClosedException.class, () -> c.ping(Duration.ofSeconds(5)));
    } finally {
      Files.delete(big);
    }
  }

  @Test
  void aFloodOfGarbageClosesTheChannelInsteadOfLoggingForever() throws Exception {
    peer(
        (f, w) -> {
          // answer every request with garbage headers: magic and version right, header CRC wrong
          try {
            byte[] junk = new byte[20 * 1000];
            for (int i = 0; i < junk.length; i += 20) {
              System.arraycopy(new byte[] {'A', 'V', 'M', 'P', 1, 2, 0, 1}, 0, junk, i, 8);
            }
            java.lang.reflect.Field out = FrameWriter.class.getDeclaredField("out");
            out.setAccessible(true);
            java.io.OutputStream raw = (java.io.OutputStream) out.get(w);
            raw.write(junk);
            raw.flush();
          } catch (IOException | ReflectiveOperationException e) {
            throw new IllegalStateException(e);
          }
        });
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      AgentChannelClosedException e =
          assertThrows(AgentChannelClosedException.class, () -> c.ping(Duration.ofSeconds(10)));
      assertTrue(String.valueOf(e.getMessage()).contains("malformed"), e.getMessage());
      assertTrue(!c.isOpen());
    }
  }

  @Test
  void theOutputListenerHearsOnlyWhatTheLimitKeeps() throws Exception {
    peer(
        (f, w) -> {
          try {
            if (f.type() == MessageType.EXEC.wire()) {
              for (int i = 0; i < 10; i++) {
                w.write(
                    new Frame(
                        MessageType.STDOUT.wire(),
                        Frame.FLAG_RESPONSE,
                        f.requestId(),
                        new byte[1000]));
              }
              w.write(
                  Frame.response(
                      MessageType.EXIT,
                      f.requestId(),
                      new dev.agentvm.protocol.ExitStatus(0, 0, 1, false, false, false, false)
                          .encode()));
            }
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      java.util.concurrent.atomic.AtomicLong heard = new java.util.concurrent.atomic.AtomicLong();
      dev.agentvm.core.agent.ExecResult r =
          c.execAsync(
                  dev.agentvm.core.agent.ExecRequest.command("true").withOutputLimit(2500),
                  new dev.agentvm.core.agent.OutputListener() {
                    @Override
                    public void onStdout(byte[] chunk) {
                      heard.addAndGet(chunk.length);
                    }
                  })
              .await(Duration.ofSeconds(5));
      assertEquals(2500, r.stdout().length);
      assertTrue(r.stdoutTruncated());
      assertEquals(2500, heard.get(), "the listener got exactly what was kept");
    }
  }

  @Test
  void aCommandWithoutATimeoutReachesTheGuestWithTheDefaultOne() throws Exception {
    java.util.concurrent.BlockingQueue<Long> sent =
        new java.util.concurrent.LinkedBlockingQueue<>();
    peer(
        (f, w) -> {
          try {
            if (f.type() == MessageType.EXEC.wire()) {
              sent.add(dev.agentvm.protocol.ExecSpec.decode(f.payload()).timeoutMillis());
              w.write(
                  Frame.response(
                      MessageType.EXIT,
                      f.requestId(),
                      new dev.agentvm.protocol.ExitStatus(0, 0, 1, false, false, false, false)
                          .encode()));
            }
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      c.exec(dev.agentvm.core.agent.ExecRequest.command("true"));
      c.execAsync(
              dev.agentvm.core.agent.ExecRequest.script("true", "sh"),
              dev.agentvm.core.agent.OutputListener.NONE)
          .await(Duration.ofSeconds(5));
      c.exec(dev.agentvm.core.agent.ExecRequest.command("true").withTimeout(Duration.ofSeconds(7)));
    }
    long dflt = dev.agentvm.core.agent.ExecRequest.DEFAULT_TIMEOUT.toMillis();
    assertEquals(600_000, dflt);
    assertEquals(List.of(dflt, dflt, 7_000L), List.copyOf(sent), "EXEC timeouts on the wire");
  }

  @Test
  void aListenerThatThrowsFailsItsCallOnly() throws Exception {
    peer(
        (f, w) -> {
          try {
            if (f.type() == MessageType.EXEC.wire()) {
              w.write(
                  new Frame(
                      MessageType.STDOUT.wire(), Frame.FLAG_RESPONSE, f.requestId(), new byte[10]));
            } else {
              w.write(Frame.response(MessageType.PONG, f.requestId(), f.payload()));
            }
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        });
    try (AgentClient c =
        AgentClient.connect(new UnixSocketTransport(sock), Duration.ofSeconds(5))) {
      var exec =
          c.execAsync(
              dev.agentvm.core.agent.ExecRequest.command("true"),
              new dev.agentvm.core.agent.OutputListener() {
                @Override
                public void onStdout(byte[] chunk) {
                  throw new IllegalStateException("listener bug");
                }
              });
      long t0 = System.nanoTime();
      assertThrows(IOException.class, () -> exec.await(Duration.ofSeconds(20)));
      assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "failed at once, not at the deadline");
      assertTrue(c.isOpen(), "the channel serves the other calls");
      c.ping(Duration.ofSeconds(5));
    }
  }
}
