package dev.agentvm.core.agent;

import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.HelloRequest;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.Protocol;
import dev.agentvm.protocol.ProtocolException;
import java.io.IOException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host's client of one guest agent. Requests carry ids, so several may be in flight on one
 * channel; one reader thread matches answers to requests. Every call has a deadline.
 *
 * <pre>{@code
 * try (AgentClient agent = AgentClient.connect(new UnixSocketTransport(socket), Duration.ofSeconds(60))) {
 *   System.out.println(agent.hello().agentVersion());
 * }
 * }</pre>
 */
public final class AgentClient implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(AgentClient.class);
  private static final String HOST_SOFTWARE = "agent-vm-core " + Protocol.VERSION;
  private static final Duration HELLO_RETRY = Duration.ofSeconds(3);

  private final AgentTransport transport;
  private final AgentTransport.Connection connection;
  private final FrameWriter writer;
  private final Map<Integer, CompletableFuture<Frame>> pending = new ConcurrentHashMap<>();
  private final AtomicInteger nextId = new AtomicInteger(1);
  private final AtomicBoolean closed = new AtomicBoolean();
  private final Thread reader;
  private volatile HelloResponse hello;
  private volatile IOException failure;

  private AgentClient(AgentTransport transport, AgentTransport.Connection connection) {
    this.transport = transport;
    this.connection = connection;
    this.writer = new FrameWriter(connection.output());
    this.reader = new Thread(this::readLoop, "agentvm-agent-reader " + transport.describe());
    this.reader.setDaemon(true);
    this.reader.start();
  }

  /**
   * Connects and completes the HELLO handshake, retrying until the deadline: the endpoint may not
   * exist yet and the guest agent may not be up yet.
   *
   * @throws AgentTimeoutException if no HELLO answer came before the deadline
   * @throws AgentErrorException if the agent refused the handshake (e.g. no common version)
   */
  public static AgentClient connect(AgentTransport transport, Duration deadline)
      throws IOException {
    long end = System.nanoTime() + deadline.toNanos();
    IOException last = null;
    while (System.nanoTime() < end) {
      AgentTransport.Connection c;
      try {
        c = transport.connect();
      } catch (IOException e) {
        last = e;
        sleep(50);
        continue;
      }
      AgentClient client = new AgentClient(transport, c);
      try {
        client.handshake(end);
        return client;
      } catch (AgentErrorException e) {
        client.close();
        throw e;
      } catch (IOException e) {
        client.close();
        last = e;
      }
    }
    AgentTimeoutException t =
        new AgentTimeoutException(
            "no HELLO from the guest agent over "
                + transport.describe()
                + " within "
                + deadline.toMillis()
                + " ms");
    if (last != null) {
      t.addSuppressed(last);
    }
    throw t;
  }

  private void handshake(long endNanos) throws IOException {
    byte[] payload = new HelloRequest(Protocol.VERSION, Protocol.VERSION, HOST_SOFTWARE).encode();
    // Every attempt of this handshake shares one future: QEMU buffers what we send until the guest
    // opens its port, so the first answer to any attempt completes the handshake. Attempts are
    // repeated because a HELLO read by an agent that then died is never answered.
    CompletableFuture<Frame> answer = new CompletableFuture<>();
    try {
      while (true) {
        long left = endNanos - System.nanoTime();
        if (left <= 0) {
          throw new AgentTimeoutException("no HELLO answer over " + transport.describe());
        }
        send(MessageType.HELLO, payload, answer);
        try {
          Frame f = answer.get(Math.min(left, HELLO_RETRY.toNanos()), TimeUnit.NANOSECONDS);
          hello = HelloResponse.decode(checkError(f).payload());
          LOG.debug(
              "agent over {} says HELLO: version {}, agent {}",
              transport.describe(),
              hello.version(),
              hello.agentVersion());
          return;
        } catch (TimeoutException e) {
          // send again
        }
      }
    } catch (ExecutionException e) {
      throw e.getCause() instanceof IOException io
          ? io
          : new AgentException("HELLO failed", e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AgentException("interrupted waiting for HELLO", e);
    } finally {
      answer.cancel(false);
    }
  }

  /** The agent's HELLO answer from the handshake. */
  public HelloResponse hello() {
    return hello;
  }

  /** Round trip of a PING; returns the time it took. */
  public Duration ping(Duration deadline) throws IOException {
    long t0 = System.nanoTime();
    call(MessageType.PING, new byte[0], deadline);
    return Duration.ofNanos(System.nanoTime() - t0);
  }

  /** Asks the guest to flush and power off; returns once the agent acknowledged. */
  public void requestShutdown(Duration deadline) throws IOException {
    call(MessageType.SHUTDOWN, new byte[0], deadline);
  }

  /**
   * Sends a request and waits for the answer with the same request id.
   *
   * @throws AgentErrorException if the agent answered ERROR
   * @throws AgentTimeoutException if no answer came in time
   * @throws AgentChannelClosedException if the channel closed first
   */
  public Frame call(MessageType type, byte[] payload, Duration deadline) throws IOException {
    CompletableFuture<Frame> f = send(type, payload, new CompletableFuture<>());
    try {
      return checkError(f.get(deadline.toNanos(), TimeUnit.NANOSECONDS));
    } catch (TimeoutException e) {
      throw new AgentTimeoutException(
          type
              + " got no answer within "
              + deadline.toMillis()
              + " ms over "
              + transport.describe());
    } catch (ExecutionException e) {
      if (e.getCause() instanceof IOException io) {
        throw io;
      }
      throw new AgentException(type + " failed", e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AgentException("interrupted waiting for " + type, e);
    } finally {
      f.cancel(false);
    }
  }

  private static Frame checkError(Frame answer) throws ProtocolException, AgentErrorException {
    if (answer.messageType().orElse(null) == MessageType.ERROR) {
      ErrorPayload e = ErrorPayload.decode(answer.payload());
      throw new AgentErrorException(e.code(), e.message());
    }
    return answer;
  }

  /** Sends a request whose answer completes {@code f}. */
  private CompletableFuture<Frame> send(
      MessageType type, byte[] payload, CompletableFuture<Frame> f) throws IOException {
    if (closed.get() || failure != null) {
      throw new AgentChannelClosedException(
          "channel " + transport.describe() + " is closed", failure);
    }
    int id = nextId.getAndIncrement();
    f.whenComplete((r, t) -> pending.remove(id));
    pending.put(id, f);
    if (failure != null) { // the reader died between the check and the put
      f.completeExceptionally(failure);
      return f;
    }
    writer.write(Frame.request(type, id, payload));
    return f;
  }

  private void readLoop() {
    FrameReader r = new FrameReader(connection.input());
    IOException cause = null;
    try {
      while (!closed.get()) {
        Frame f;
        try {
          f = r.read();
        } catch (ProtocolException e) {
          LOG.warn("bad frame from agent over {}: {}", transport.describe(), e.getMessage());
          if (!r.resync()) {
            break;
          }
          continue;
        }
        if (f == null) {
          break;
        }
        CompletableFuture<Frame> waiting = pending.get(f.requestId());
        if (waiting != null) {
          waiting.complete(f);
        } else {
          LOG.debug("unsolicited {} from agent over {}", f, transport.describe());
        }
      }
    } catch (IOException e) {
      cause = e;
    }
    failure = new AgentChannelClosedException("channel " + transport.describe() + " closed", cause);
    for (CompletableFuture<Frame> f : pending.values()) {
      f.completeExceptionally(failure);
    }
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    try {
      connection.close();
    } catch (IOException e) {
      LOG.debug("closing {}: {}", transport.describe(), e.getMessage());
    }
    try {
      reader.join(1000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void sleep(long ms) throws AgentException {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AgentException("interrupted", e);
    }
  }
}
