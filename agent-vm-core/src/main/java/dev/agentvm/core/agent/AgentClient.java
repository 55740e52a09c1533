package dev.agentvm.core.agent;

import dev.agentvm.internal.Hashing;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Threads;
import dev.agentvm.protocol.EgressSpec;
import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FsEntry;
import dev.agentvm.protocol.FsEvent;
import dev.agentvm.protocol.FsListing;
import dev.agentvm.protocol.FsRequest;
import dev.agentvm.protocol.HelloRequest;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.MountSpec;
import dev.agentvm.protocol.PayloadReader;
import dev.agentvm.protocol.PayloadWriter;
import dev.agentvm.protocol.ProcList;
import dev.agentvm.protocol.ProcRequest;
import dev.agentvm.protocol.Protocol;
import dev.agentvm.protocol.ProtocolException;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.protocol.StreamFrame;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host's client of one guest agent. Requests carry ids, so many may be in flight on one channel
 * (commands, transfers, pings); one reader thread routes every answer frame to its request. Every
 * blocking call has a deadline: the one it takes, or for a command without a timeout {@link
 * ExecRequest#DEFAULT_TIMEOUT}. Writing one frame waits at most {@link #WRITE_STALL_LIMIT}.
 *
 * <pre>{@code
 * try (AgentClient agent = AgentClient.connect(new UnixSocketTransport(socket), Duration.ofSeconds(60))) {
 *   ExecResult r = agent.exec(ExecRequest.script("echo hi").withTimeout(Duration.ofSeconds(10)));
 *   System.out.println(r.stdoutText());
 * }
 * }</pre>
 */
public final class AgentClient implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(AgentClient.class);
  private static final String HOST_SOFTWARE = "agent-vm-core " + Protocol.VERSION;
  private static final Duration HELLO_RETRY = Duration.ofSeconds(3);

  /**
   * How long one connection may wait for its HELLO answer before the client connects anew. After a
   * burst of hosts that hung up, the guest's view of the port can be left "no host connected" (most
   * likely QEMU dropped an open/close notice the guest had no buffer for), so its answers wait; a
   * new connection, with fresh notices, heals it (ProtocolFuzzIT's reconnect storms).
   */
  static final Duration HANDSHAKE_PER_CONNECTION = Duration.ofSeconds(12);

  /** Size of the FILE_DATA chunks the client sends. */
  public static final int FILE_CHUNK = 256 * 1024;

  /** Default largest file {@link #putFile} sends and {@link #getFile} accepts: 1 GiB. */
  public static final long DEFAULT_MAX_FILE_BYTES = 1L << 30;

  /**
   * Default for how long one frame may stay blocked in the write before the guest counts as not
   * reading: the channel is then closed and every call on it fails. A call's own deadline applies
   * first.
   */
  public static final Duration WRITE_STALL_LIMIT = Duration.ofSeconds(30);

  /**
   * Malformed frames tolerated within {@link #FRAMING_ERROR_WINDOW}; one more closes the channel (a
   * peer that sends this much garbage is broken or hostile, and each error costs a resync).
   */
  public static final int MAX_FRAMING_ERRORS = 64;

  /** The window over which framing errors are counted and summarised in the log. */
  public static final Duration FRAMING_ERROR_WINDOW = Duration.ofSeconds(10);

  private static final SecureRandom ID_START = new SecureRandom();

  private final AgentTransport transport;
  private final AgentTransport.Connection connection;
  private final FrameSender sender;
  private final Map<Integer, Handler> pending = new ConcurrentHashMap<>();

  /**
   * Request ids start at a random point in 1..2^30, not at 1: answers to an earlier connection's
   * requests (the EXIT of a command stopped at its disconnect, the rest of a GET_FILE) can still
   * arrive on this one, and must not match a request of ours.
   */
  private final AtomicInteger nextId = new AtomicInteger(1 + ID_START.nextInt(1 << 30));

  private final AtomicBoolean closed = new AtomicBoolean();
  private final Thread reader;
  private volatile long maxFileBytes = DEFAULT_MAX_FILE_BYTES;
  private volatile Duration writeStallLimit = WRITE_STALL_LIMIT;
  private volatile @Nullable HelloResponse hello; // set by the handshake, before connect returns
  private volatile @Nullable IOException failure; // set once, under the pending map's monitor

  /** Receives the frames answering one request, on the reader thread. */
  private interface Handler {
    /** Returns true when the request is finished and the handler can be dropped. */
    boolean onFrame(Frame f);

    void onClosed(IOException cause);
  }

  private AgentClient(AgentTransport transport, AgentTransport.Connection connection) {
    this.transport = transport;
    this.connection = connection;
    this.sender = new FrameSender(connection.output(), transport.describe(), this::fail);
    this.reader = Threads.daemon(this::readLoop, "agentvm-agent-reader " + transport.describe());
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
        client.handshake(Math.min(end, System.nanoTime() + HANDSHAKE_PER_CONNECTION.toNanos()));
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
    // Every attempt shares one future: QEMU buffers what we send until the guest opens its port, so
    // the first answer to any attempt completes the handshake. Attempts repeat because a HELLO read
    // by an agent that then died is never answered.
    CompletableFuture<Frame> answer = new CompletableFuture<>();
    List<Integer> attempts = new ArrayList<>();
    try {
      helloLoop(payload, answer, attempts, endNanos);
    } finally {
      attempts.forEach(pending::remove); // the attempts nobody answered
    }
  }

  private void helloLoop(
      byte[] payload, CompletableFuture<Frame> answer, List<Integer> attempts, long endNanos)
      throws IOException {
    while (true) {
      long left = endNanos - System.nanoTime();
      if (left <= 0) {
        throw new AgentTimeoutException("no HELLO answer over " + transport.describe());
      }
      attempts.add(send(MessageType.HELLO, payload, Duration.ofNanos(left), single(answer)));
      try {
        HelloResponse h =
            HelloResponse.decode(
                await(
                        answer,
                        MessageType.HELLO,
                        Duration.ofNanos(Math.min(left, HELLO_RETRY.toNanos())))
                    .payload());
        hello = h;
        LOG.debug(
            "agent over {} says HELLO: version {}, agent {}",
            transport.describe(),
            h.version(),
            LogText.clean(h.agentVersion()));
        return;
      } catch (AgentTimeoutException e) {
        // send again
      }
    }
  }

  /**
   * Sends HELLO again on this connection and waits for its answer (repeating it as {@link #connect}
   * does). The reference agent brings the guest's clock to the hypervisor's before it answers, so
   * this is how a guest that stood still (a VM suspended in RAM, then resumed) gets the time back
   * without losing its running commands.
   *
   * @throws AgentTimeoutException if no answer came within {@code deadline}
   */
  public void helloAgain(Duration deadline) throws IOException {
    handshake(System.nanoTime() + deadline.toNanos());
  }

  /** The agent's HELLO answer from the handshake. */
  public HelloResponse hello() {
    HelloResponse h = hello;
    if (h == null) { // not reachable: connect returns a client only after the handshake
      throw new IllegalStateException("no HELLO handshake yet");
    }
    return h;
  }

  /** Largest file {@link #putFile} sends and {@link #getFile} accepts. */
  public void maxFileBytes(long max) {
    this.maxFileBytes = max;
  }

  /**
   * How long one frame may stay blocked in the write before the channel is closed as stalled
   * (default {@link #WRITE_STALL_LIMIT}).
   */
  public void writeStallLimit(Duration limit) {
    if (limit.isNegative() || limit.isZero()) {
      throw new IllegalArgumentException("writeStallLimit must be > 0, was " + limit);
    }
    this.writeStallLimit = limit;
  }

  /** Round trip of a PING; returns the time it took. */
  public Duration ping(Duration deadline) throws IOException {
    long t0 = System.nanoTime();
    call(MessageType.PING, new byte[0], deadline);
    return Duration.ofNanos(System.nanoTime() - t0);
  }

  /**
   * Sends a PING without waiting. The future completes with the round-trip time when the PONG
   * arrives, or exceptionally when the channel closes. Used by {@link HeartbeatMonitor}.
   */
  public CompletableFuture<Duration> pingAsync() throws IOException {
    long t0 = System.nanoTime();
    CompletableFuture<Frame> f = new CompletableFuture<>();
    sendAsync(MessageType.PING, new byte[0], single(f));
    return f.thenApply(frame -> Duration.ofNanos(System.nanoTime() - t0));
  }

  /** Guest health numbers. */
  public StatusReport status(Duration deadline) throws IOException {
    return StatusReport.decode(call(MessageType.STATUS, new byte[0], deadline).payload());
  }

  /** Asks the guest to flush and power off; returns once the agent acknowledged. */
  public void requestShutdown(Duration deadline) throws IOException {
    PayloadReader.requireEmpty(call(MessageType.SHUTDOWN, new byte[0], deadline).payload());
  }

  /** Mounts a virtio-9p share in the guest. */
  public void mount(MountSpec spec, Duration deadline) throws IOException {
    PayloadReader.requireEmpty(call(MessageType.MOUNT, spec.encode(), deadline).payload());
  }

  /**
   * A background process on this connection: its handle (valid across connections, for {@link
   * #attach}), and its end, which completes with its exit status when this connection sees it, or
   * exceptionally when the connection closes first (the process keeps running in the guest).
   */
  public record Background(int handle, CompletableFuture<ExitStatus> exit) {}

  /**
   * Starts a background process (SPAWN): it runs until it ends or is killed, whatever happens to
   * this connection. Its output goes to {@code listener} while this connection lasts; without a
   * connection the guest keeps the last 256 KiB of each stream for the next {@link #attach}. The
   * request's timeout and output limit do not apply (a background process has none).
   */
  public Background spawn(ExecRequest r, OutputListener listener, Duration deadline)
      throws IOException {
    ExecSpec spec =
        new ExecSpec(
            r.argv(),
            r.script(),
            r.env(),
            r.cwd(),
            r.stdin(),
            0,
            r.outputLimit(),
            r.killGrace().toMillis());
    CompletableFuture<Frame> first = new CompletableFuture<>();
    CompletableFuture<ExitStatus> exit = new CompletableFuture<>();
    long end = System.nanoTime() + deadline.toNanos();
    int id = send(MessageType.SPAWN, spec.encode(), deadline, streaming(first, exit, listener));
    Frame answer;
    try {
      answer = await(first, MessageType.SPAWN, remaining(end));
    } catch (IOException e) {
      pending.remove(id);
      throw e;
    }
    PayloadReader pr = new PayloadReader(answer.payload());
    int handle = pr.i32();
    pr.end();
    return new Background(handle, exit);
  }

  /**
   * Streams a background process's output to {@code listener}: first what the guest kept while no
   * host listened, then live output; the returned future completes with its exit status.
   *
   * @throws AgentErrorException NOT_FOUND if the guest has no process with this handle
   */
  public CompletableFuture<ExitStatus> attach(
      int handle, OutputListener listener, Duration deadline) throws IOException {
    CompletableFuture<Frame> first = new CompletableFuture<>();
    CompletableFuture<ExitStatus> exit = new CompletableFuture<>();
    long end = System.nanoTime() + deadline.toNanos();
    int id =
        send(
            MessageType.PROC,
            ProcRequest.of(ProcRequest.Op.ATTACH, handle).encode(),
            deadline,
            streaming(first, exit, listener));
    try {
      Frame ack = await(first, MessageType.PROC, remaining(end));
      PayloadReader.requireEmpty(ack.payload());
    } catch (IOException e) {
      pending.remove(id);
      throw e;
    }
    return exit;
  }

  /** Writes to a background process's standard input (in chunks; each is acknowledged). */
  public void writeInput(int handle, byte[] data, Duration deadline) throws IOException {
    long end = System.nanoTime() + deadline.toNanos();
    for (int off = 0; off < data.length; off += ProcRequest.MAX_STDIN_CHUNK) {
      byte[] chunk =
          java.util.Arrays.copyOfRange(
              data, off, Math.min(data.length, off + ProcRequest.MAX_STDIN_CHUNK));
      procCall(new ProcRequest(ProcRequest.Op.STDIN, handle, chunk), remaining(end));
    }
  }

  /** Closes a background process's standard input. */
  public void closeInput(int handle, Duration deadline) throws IOException {
    procCall(ProcRequest.of(ProcRequest.Op.CLOSE_STDIN, handle), deadline);
  }

  /** Stops a background process's group (TERM, then KILL after its kill grace). */
  public void killBackground(int handle, Duration deadline) throws IOException {
    procCall(ProcRequest.of(ProcRequest.Op.KILL, handle), deadline);
  }

  /** The background processes the guest knows. */
  public ProcList backgroundProcesses(Duration deadline) throws IOException {
    return ProcList.decode(procCall(ProcRequest.of(ProcRequest.Op.LIST, 0), deadline));
  }

  private byte[] procCall(ProcRequest q, Duration deadline) throws IOException {
    Frame f = call(MessageType.PROC, q.encode(), deadline);
    if (f.messageType().orElse(null) != MessageType.PROC) {
      throw new ProtocolException(
          ErrorCode.MALFORMED_PAYLOAD,
          "PROC answered with frame type 0x" + Integer.toHexString(f.type()));
    }
    if (q.op() != ProcRequest.Op.LIST) {
      PayloadReader.requireEmpty(f.payload());
    }
    return f.payload();
  }

  /**
   * A handler for SPAWN and ATTACH: the first frame is the answer, then STDOUT/STDERR chunks to the
   * listener, then EXIT (or an ERROR, or the channel closing).
   */
  private static Handler streaming(
      CompletableFuture<Frame> first, CompletableFuture<ExitStatus> exit, OutputListener listener) {
    return new Handler() {
      @Override
      public boolean onFrame(Frame f) {
        MessageType t = f.messageType().orElse(null);
        if (!first.isDone()) {
          first.complete(f); // the answer, or an ERROR that await turns into an exception
          return t == MessageType.ERROR;
        }
        try {
          if (t == MessageType.STDOUT) {
            listener.onStdout(f.payload());
            return false;
          }
          if (t == MessageType.STDERR) {
            listener.onStderr(f.payload());
            return false;
          }
          if (t == MessageType.EXIT) {
            exit.complete(ExitStatus.decode(f.payload()));
            return true;
          }
          exit.completeExceptionally(errorOf(f));
        } catch (ProtocolException | RuntimeException e) {
          exit.completeExceptionally(e);
        }
        return true;
      }

      @Override
      public void onClosed(IOException cause) {
        first.completeExceptionally(cause);
        exit.completeExceptionally(cause);
      }
    };
  }

  /**
   * A directory watch on this connection: its request id (what {@link #stopWatch} names) and its
   * end, which completes when the guest ended it (stopped, or the directory went away) and
   * exceptionally when the connection closed first.
   */
  public record Watch(int requestId, CompletableFuture<Void> ended) {}

  /**
   * Watches a guest directory (not its subdirectories): every entry created, modified or deleted
   * there is passed to {@code listener} on the reader thread (keep it quick).
   *
   * @throws AgentErrorException NOT_FOUND or NOT_A_DIRECTORY for a bad path
   */
  public Watch watch(String dir, java.util.function.Consumer<FsEvent> listener, Duration deadline)
      throws IOException {
    CompletableFuture<Frame> first = new CompletableFuture<>();
    CompletableFuture<Void> ended = new CompletableFuture<>();
    Handler h =
        new Handler() {
          @Override
          public boolean onFrame(Frame f) {
            MessageType t = f.messageType().orElse(null);
            if (!first.isDone()) {
              first.complete(f);
              return t != MessageType.WATCH;
            }
            if (t != MessageType.WATCH) {
              ended.completeExceptionally(errorOf(f));
              return true;
            }
            if ((f.flags() & Frame.FLAG_END) != 0) {
              ended.complete(null);
              return true;
            }
            try {
              listener.accept(FsEvent.decode(f.payload()));
            } catch (ProtocolException | RuntimeException e) {
              ended.completeExceptionally(e);
              return true;
            }
            return false;
          }

          @Override
          public void onClosed(IOException cause) {
            first.completeExceptionally(cause);
            ended.completeExceptionally(cause);
          }
        };
    long end = System.nanoTime() + deadline.toNanos();
    byte[] payload = new PayloadWriter().string(dir).toByteArray();
    int id = send(MessageType.WATCH, payload, deadline, h);
    try {
      PayloadReader.requireEmpty(await(first, MessageType.WATCH, remaining(end)).payload());
    } catch (IOException e) {
      pending.remove(id);
      throw e;
    }
    return new Watch(id, ended);
  }

  /** Stops a watch; its {@link Watch#ended()} completes when the guest confirms. */
  public void stopWatch(Watch w, Duration deadline) throws IOException {
    byte[] payload = new PayloadWriter().i32(w.requestId()).toByteArray();
    PayloadReader.requireEmpty(call(MessageType.KILL, payload, deadline).payload());
  }

  /** Routes an egress's frames: its first answer, then STREAMs, until its end. */
  private static final class EgressHandler implements Handler {
    private final CompletableFuture<Frame> first;
    private final StreamListener listener;
    private final AtomicBoolean ended = new AtomicBoolean();

    EgressHandler(CompletableFuture<Frame> first, StreamListener listener) {
      this.first = first;
      this.listener = listener;
    }

    @Override
    public boolean onFrame(Frame f) {
      MessageType t = f.messageType().orElse(null);
      if (!first.isDone()) {
        first.complete(f);
        return t != MessageType.EGRESS;
      }
      if (t == MessageType.STREAM) {
        try {
          listener.onStream(StreamFrame.decode(f.payload()));
        } catch (ProtocolException e) {
          LOG.debug(
              "dropped a malformed STREAM frame: {}",
              LogText.clean(String.valueOf(e.getMessage())));
        }
        return false;
      }
      if (ended.compareAndSet(false, true)) {
        listener.onEnd(t == MessageType.EGRESS ? null : errorOf(f));
      }
      return true;
    }

    @Override
    public void onClosed(IOException cause) {
      first.completeExceptionally(cause);
      if (ended.compareAndSet(false, true)) {
        listener.onEnd(cause);
      }
    }
  }

  /** Receives one egress's STREAM frames, on the reader thread: must never block. */
  public interface StreamListener {
    /** A STREAM frame from the guest (already decoded; malformed ones are dropped and logged). */
    void onStream(StreamFrame f);

    /**
     * The egress ended: stopped, replaced by another, or the connection closed ({@code cause} then
     * says why, else it is null).
     */
    void onEnd(@Nullable IOException cause);
  }

  /** An open egress listener in the guest: its request id, which every STREAM frame carries. */
  public record Egress(int requestId) {}

  /**
   * Opens the guest's egress listener on its loopback ({@link MessageType#EGRESS}); each client
   * connection there becomes a stream whose frames reach {@code listener}. Replaces an egress
   * opened before (that one's listener hears {@link StreamListener#onEnd}).
   */
  public Egress egress(EgressSpec spec, StreamListener listener, Duration deadline)
      throws IOException {
    CompletableFuture<Frame> first = new CompletableFuture<>();
    Handler h = new EgressHandler(first, listener);
    long end = System.nanoTime() + deadline.toNanos();
    int id = send(MessageType.EGRESS, spec.encode(), deadline, h);
    try {
      PayloadReader.requireEmpty(await(first, MessageType.EGRESS, remaining(end)).payload());
    } catch (IOException e) {
      pending.remove(id);
      throw e;
    }
    return new Egress(id);
  }

  /**
   * Queues a STREAM frame of {@code egress} for the guest. The future completes once it is written,
   * exceptionally if it cannot be (the channel closed, or too many frames wait).
   */
  public CompletableFuture<Void> sendStream(Egress egress, StreamFrame f) {
    return sender.send(Frame.request(MessageType.STREAM, egress.requestId(), f.encode()));
  }

  /** Closes the guest's egress listener and every stream of it. */
  public void stopEgress(Egress egress, Duration deadline) throws IOException {
    byte[] payload = new PayloadWriter().i32(egress.requestId()).toByteArray();
    PayloadReader.requireEmpty(call(MessageType.KILL, payload, deadline).payload());
  }

  /**
   * The guest's entry for {@code path} (links are reported, not followed).
   *
   * @throws AgentErrorException NOT_FOUND if there is none
   */
  public FsEntry stat(String path, Duration deadline) throws IOException {
    return FsEntry.decode(fsOp(FsRequest.of(FsRequest.Op.STAT, path), deadline));
  }

  /**
   * The entries of a guest directory, sorted by name: at most {@code limit} (1..{@link
   * FsRequest#MAX_LIST}); {@link FsListing#truncated()} says whether there were more.
   */
  public FsListing list(String dir, int limit, Duration deadline) throws IOException {
    return FsListing.decode(
        fsOp(new FsRequest(FsRequest.Op.LIST, dir, "", 0, limit), deadline), limit);
  }

  /**
   * Creates a guest directory; with {@code parents}, missing parents too and no error if present.
   */
  public void mkdir(String dir, boolean parents, Duration deadline) throws IOException {
    PayloadReader.requireEmpty(
        fsOp(
            new FsRequest(FsRequest.Op.MKDIR, dir, "", parents ? FsRequest.RECURSIVE : 0, 0),
            deadline));
  }

  /** Removes a guest file, link or empty directory; with {@code recursive}, a whole tree. */
  public void remove(String path, boolean recursive, Duration deadline) throws IOException {
    PayloadReader.requireEmpty(
        fsOp(
            new FsRequest(FsRequest.Op.REMOVE, path, "", recursive ? FsRequest.RECURSIVE : 0, 0),
            deadline));
  }

  /** Renames a guest path atomically (within one file system), replacing a file at the target. */
  public void rename(String from, String to, Duration deadline) throws IOException {
    PayloadReader.requireEmpty(fsOp(new FsRequest(FsRequest.Op.RENAME, from, to, 0, 0), deadline));
  }

  private byte[] fsOp(FsRequest q, Duration deadline) throws IOException {
    Frame f = call(MessageType.FS_OP, q.encode(), deadline);
    if (f.messageType().orElse(null) != MessageType.FS_OP) {
      throw new ProtocolException(
          ErrorCode.MALFORMED_PAYLOAD,
          "FS_OP answered with frame type 0x" + Integer.toHexString(f.type()));
    }
    return f.payload();
  }

  /**
   * Sends a request and waits for its single answer.
   *
   * @throws AgentErrorException if the agent answered ERROR
   * @throws AgentTimeoutException if no answer came in time
   * @throws AgentChannelClosedException if the channel closed first
   */
  public Frame call(MessageType type, byte[] payload, Duration deadline) throws IOException {
    long end = System.nanoTime() + deadline.toNanos();
    CompletableFuture<Frame> f = new CompletableFuture<>();
    int id = send(type, payload, deadline, single(f));
    try {
      return await(f, type, remaining(end));
    } finally {
      pending.remove(id);
    }
  }

  /** A running command: its request id, its result, and a way to stop it. */
  public final class Execution {
    private final int requestId;
    private final CompletableFuture<ExecResult> result;

    Execution(int requestId, CompletableFuture<ExecResult> result) {
      this.requestId = requestId;
      this.result = result;
    }

    public int requestId() {
      return requestId;
    }

    /** Completes with the result, or exceptionally with an {@link AgentException}. */
    public CompletableFuture<ExecResult> result() {
      return result;
    }

    /** Asks the agent to stop the command (TERM, then KILL after its grace period). */
    public void kill(Duration deadline) throws IOException {
      PayloadReader.requireEmpty(
          call(MessageType.KILL, new PayloadWriter().i32(requestId).toByteArray(), deadline)
              .payload());
    }

    /**
     * Waits for the result.
     *
     * @throws AgentTimeoutException if the deadline passed; the command is then killed
     */
    public ExecResult await(Duration deadline) throws IOException {
      try {
        return result.get(deadline.toNanos(), TimeUnit.NANOSECONDS);
      } catch (TimeoutException e) {
        try {
          kill(Duration.ofSeconds(5));
        } catch (IOException k) {
          LOG.debug(
              "kill after deadline failed: {}", LogText.clean(String.valueOf(k.getMessage())));
        }
        AgentTimeoutException t =
            new AgentTimeoutException(
                "command " + requestId + " did not end within " + deadline.toMillis() + " ms");
        // a guest that never sends EXIT must not keep the request and its buffers registered
        pending.remove(requestId);
        result.completeExceptionally(t);
        throw t;
      } catch (ExecutionException e) {
        throw unwrap(e, "EXEC");
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AgentException("interrupted waiting for command " + requestId, e);
      }
    }
  }

  /**
   * How much longer than a command's time limit and kill grace {@link #exec} waits for its EXIT
   * (the guest sends it once the process tree is gone; a slow guest may take a while).
   */
  static final Duration EXIT_ALLOWANCE = Duration.ofSeconds(30);

  /**
   * Starts a command; output goes to {@code listener} as it arrives and into the result. A request
   * without a timeout runs with {@link ExecRequest#DEFAULT_TIMEOUT} (10 min): the guest stops it
   * then, and the result completes (wait for it with {@link Execution#await}).
   */
  public Execution execAsync(ExecRequest r, OutputListener listener) throws IOException {
    ExecSpec spec =
        new ExecSpec(
            r.argv(),
            r.script(),
            r.env(),
            r.cwd(),
            r.stdin(),
            r.timeoutOrDefault().toMillis(),
            r.outputLimit(),
            r.killGrace().toMillis());
    CompletableFuture<ExecResult> result = new CompletableFuture<>();
    Handler h =
        new Handler() {
          final Bounded out = new Bounded(r.outputLimit());
          final Bounded err = new Bounded(r.outputLimit());

          @Override
          public boolean onFrame(Frame f) {
            MessageType t = f.messageType().orElse(null);
            try {
              // only what is kept is passed on: the limit bounds the listener's input too
              if (t == MessageType.STDOUT) {
                byte[] kept = out.add(f.payload());
                if (kept.length > 0) {
                  listener.onStdout(kept);
                }
                return false;
              }
              if (t == MessageType.STDERR) {
                byte[] kept = err.add(f.payload());
                if (kept.length > 0) {
                  listener.onStderr(kept);
                }
                return false;
              }
              if (t == MessageType.EXIT) {
                ExitStatus s = ExitStatus.decode(f.payload());
                result.complete(
                    new ExecResult(
                        s.exitCode(),
                        s.signal(),
                        Duration.ofMillis(s.durationMillis()),
                        s.timedOut(),
                        s.killed(),
                        out.bytes(),
                        err.bytes(),
                        s.stdoutTruncated() || out.over,
                        s.stderrTruncated() || err.over));
                return true;
              }
              result.completeExceptionally(errorOf(f));
            } catch (ProtocolException | RuntimeException e) {
              result.completeExceptionally(e);
            }
            return true;
          }

          @Override
          public void onClosed(IOException cause) {
            result.completeExceptionally(cause);
          }
        };
    return new Execution(send(MessageType.EXEC, spec.encode(), WRITE_STALL_LIMIT, h), result);
  }

  /**
   * Runs a command and waits for it: up to its timeout ({@link ExecRequest#DEFAULT_TIMEOUT}, 10
   * min, when the request sets none) plus its kill grace plus 30 s.
   *
   * @throws AgentTimeoutException if no EXIT came by then (the command is then killed)
   */
  public ExecResult exec(ExecRequest r) throws IOException {
    return execAsync(r, OutputListener.NONE).await(execWait(r));
  }

  /** How long {@link #exec} waits for {@code r}. */
  static Duration execWait(ExecRequest r) {
    return r.timeoutOrDefault().plus(r.killGrace()).plus(EXIT_ALLOWANCE);
  }

  /**
   * Copies a local file into the guest. The guest writes it to a temporary name and renames it into
   * place only after size and SHA-256 match, so a failed copy leaves no partial file.
   *
   * @return what the guest now holds
   * @throws AgentException if the file is larger than the limit, or the guest refused or failed
   */
  public FileHeader putFile(Path local, String guestPath, int mode, Duration deadline)
      throws IOException {
    long size = Files.size(local);
    if (size > maxFileBytes) {
      throw new AgentException(
          local + " is " + size + " bytes, more than the limit of " + maxFileBytes);
    }
    long end = System.nanoTime() + deadline.toNanos();
    FileHeader header = new FileHeader(guestPath, mode, size, Hashing.sha256Hex(local));
    CompletableFuture<Frame> ready = new CompletableFuture<>();
    CompletableFuture<Frame> done = new CompletableFuture<>();
    int id =
        send(
            MessageType.PUT_FILE,
            header.encode(),
            deadline,
            new Handler() {
              @Override
              public boolean onFrame(Frame f) {
                if (f.messageType().orElse(null) != MessageType.PUT_FILE) {
                  IOException e = errorOf(f);
                  ready.completeExceptionally(e);
                  done.completeExceptionally(e);
                  return true;
                }
                if ((f.flags() & Frame.FLAG_END) == 0) {
                  ready.complete(f);
                  return false;
                }
                done.complete(f);
                return true;
              }

              @Override
              public void onClosed(IOException cause) {
                ready.completeExceptionally(cause);
                done.completeExceptionally(cause);
              }
            });
    try {
      PayloadReader.requireEmpty(await(ready, MessageType.PUT_FILE, remaining(end)).payload());
      try (InputStream in = Files.newInputStream(local)) {
        byte[] buf = new byte[FILE_CHUNK];
        while (true) {
          int n = in.readNBytes(buf, 0, buf.length);
          boolean last = n < buf.length;
          write(
              new Frame(
                  MessageType.FILE_DATA.wire(),
                  last ? Frame.FLAG_END : 0,
                  id,
                  Arrays.copyOf(buf, n)),
              MessageType.FILE_DATA,
              remaining(end));
          if (last) {
            break;
          }
          if (done.isDone()) {
            // the guest gave up (its ERROR is in done), or claims success before it has the data
            await(done, MessageType.PUT_FILE, remaining(end));
            throw new AgentException(
                "the agent ended the PUT_FILE of "
                    + LogText.clean(guestPath)
                    + " before all of its data was sent");
          }
        }
      }
      PayloadReader.requireEmpty(await(done, MessageType.PUT_FILE, remaining(end)).payload());
      return header;
    } finally {
      pending.remove(id);
    }
  }

  /**
   * Copies a guest file to {@code local}: written to a temporary file beside it and renamed into
   * place after size and SHA-256 match.
   */
  public FileHeader getFile(String guestPath, Path local, Duration deadline) throws IOException {
    return getFile(guestPath, local, deadline, maxFileBytes);
  }

  /**
   * Like {@link #getFile(String, Path, Duration)}, accepting at most {@code maxBytes} (and never
   * more than {@link #maxFileBytes(long)}).
   */
  public FileHeader getFile(String guestPath, Path local, Duration deadline, long maxBytes)
      throws IOException {
    Path dir = local.toAbsolutePath().getParent();
    if (dir == null) {
      throw new IOException("cannot copy " + guestPath + " to " + local + ": not a file path");
    }
    Files.createDirectories(dir);
    Path tmp = Files.createTempFile(dir, "." + local.getFileName(), ".part");
    FileChannel ch =
        FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
    MessageDigest sha = Hashing.sha256();
    long limit = Math.min(maxBytes, maxFileBytes);
    CompletableFuture<FileHeader> done = new CompletableFuture<>();
    int id = -1;
    boolean ok = false;
    try {
      id =
          send(
              MessageType.GET_FILE,
              new PayloadWriter().string(guestPath).i64(limit).toByteArray(),
              deadline,
              new Handler() {
                long received;

                @Override
                public boolean onFrame(Frame f) {
                  MessageType t = f.messageType().orElse(null);
                  try {
                    if (t == MessageType.FILE_DATA) {
                      received += f.payload().length;
                      if (received > limit) {
                        done.completeExceptionally(
                            new AgentLimitException(
                                guestPath + " is larger than the limit of " + limit));
                        return false; // keep consuming the rest of the stream
                      }
                      sha.update(f.payload());
                      ByteBuffer b = ByteBuffer.wrap(f.payload());
                      while (b.hasRemaining()) {
                        ch.write(b);
                      }
                      return false;
                    }
                    if (t == MessageType.GET_FILE) {
                      FileHeader h = FileHeader.decode(f.payload());
                      String got = Hashing.hex(sha.digest());
                      if (h.size() != received || !h.sha256().equalsIgnoreCase(got)) {
                        done.completeExceptionally(
                            new AgentException(
                                "copy of "
                                    + guestPath
                                    + " is corrupt: got "
                                    + received
                                    + " bytes with SHA-256 "
                                    + got
                                    + ", guest sent "
                                    + h.size()
                                    + " with "
                                    + h.sha256()));
                      } else {
                        done.complete(h);
                      }
                      return true;
                    }
                    done.completeExceptionally(errorOf(f));
                  } catch (IOException | RuntimeException e) {
                    done.completeExceptionally(e);
                  }
                  return true;
                }

                @Override
                public void onClosed(IOException cause) {
                  done.completeExceptionally(cause);
                }
              });
      FileHeader h = await(done, MessageType.GET_FILE, deadline);
      ch.force(true);
      ch.close();
      Files.move(tmp, local, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      ok = true;
      return h;
    } finally {
      if (id >= 0) {
        pending.remove(id);
      }
      if (!ok) {
        ch.close();
        Files.deleteIfExists(tmp);
      }
    }
  }

  private static Duration remaining(long endNanos) {
    return Duration.ofNanos(Math.max(1, endNanos - System.nanoTime()));
  }

  private static Handler single(CompletableFuture<Frame> f) {
    return new Handler() {
      @Override
      public boolean onFrame(Frame frame) {
        f.complete(frame);
        return true;
      }

      @Override
      public void onClosed(IOException cause) {
        f.completeExceptionally(cause);
      }
    };
  }

  private <T> T await(CompletableFuture<T> f, MessageType type, Duration deadline)
      throws IOException {
    try {
      T v = f.get(deadline.toNanos(), TimeUnit.NANOSECONDS);
      if (v instanceof Frame frame && frame.messageType().orElse(null) == MessageType.ERROR) {
        throw errorOf(frame);
      }
      return v;
    } catch (TimeoutException e) {
      throw new AgentTimeoutException(
          type
              + " got no answer within "
              + deadline.toMillis()
              + " ms over "
              + transport.describe());
    } catch (ExecutionException e) {
      throw unwrap(e, type.name());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AgentException("interrupted waiting for " + type, e);
    }
  }

  private static IOException unwrap(ExecutionException e, String what) {
    return e.getCause() instanceof IOException io
        ? io
        : new AgentException(what + " failed", e.getCause());
  }

  private static IOException errorOf(Frame f) {
    if (f.messageType().orElse(null) != MessageType.ERROR) {
      return new AgentException("unexpected " + f + " from the agent");
    }
    try {
      ErrorPayload e = ErrorPayload.decode(f.payload());
      return new AgentErrorException(e.code(), e.message());
    } catch (ProtocolException p) {
      return p;
    }
  }

  /**
   * Registers {@code h} under a new request id and sends the request, waiting for the write up to
   * {@code deadline} (at most the write stall limit).
   */
  private int send(MessageType type, byte[] payload, Duration deadline, Handler h)
      throws IOException {
    int id = register(h);
    try {
      write(Frame.request(type, id, payload), type, deadline);
    } catch (IOException e) {
      pending.remove(id);
      throw e;
    }
    return id;
  }

  /** Sends a request without waiting for the write; its failure reaches {@code h}. */
  @SuppressWarnings(
      "FutureReturnValueIgnored") // whenComplete handles the failure; nothing else to see
  private void sendAsync(MessageType type, byte[] payload, Handler h) throws IOException {
    int id = register(h);
    sender
        .send(Frame.request(type, id, payload))
        .whenComplete(
            (ok, e) -> {
              if (e != null && pending.remove(id, h)) {
                h.onClosed(e instanceof IOException io ? io : new AgentException("send failed", e));
              }
            });
  }

  private int register(Handler h) throws AgentChannelClosedException {
    if (closed.get() || failure != null) {
      throw new AgentChannelClosedException(
          "channel " + transport.describe() + " is closed", failure);
    }
    int id = nextId.getAndIncrement();
    if (id == 0) { // reserved: the agent's framing ERRORs carry it
      id = nextId.getAndIncrement();
    }
    pending.put(id, h);
    IOException f = failure;
    if (f != null) { // the channel failed between the check and the put
      pending.remove(id);
      throw new AgentChannelClosedException("channel " + transport.describe() + " is closed", f);
    }
    return id;
  }

  /**
   * Writes one frame, waiting up to {@code deadline} (at most the write stall limit). A frame whose
   * write has not started by then is dropped; a write blocked for the whole stall limit means the
   * guest stopped reading, and closes the channel.
   */
  private void write(Frame frame, MessageType type, Duration deadline) throws IOException {
    Duration stall = writeStallLimit;
    failIfStalled(stall);
    CompletableFuture<Void> written = sender.send(frame);
    long waitNanos = Math.min(deadline.toNanos(), stall.toNanos());
    try {
      written.get(Math.max(1, waitNanos), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      written.cancel(false);
      failIfStalled(stall);
      throw new AgentTimeoutException(
          "could not send "
              + type
              + " within "
              + Duration.ofNanos(waitNanos).toMillis()
              + " ms over "
              + transport.describe()
              + ": the guest is not reading");
    } catch (ExecutionException e) {
      failIfStalled(stall); // a full queue behind a blocked write
      throw unwrap(e, "sending " + type);
    } catch (InterruptedException e) {
      written.cancel(false);
      Thread.currentThread().interrupt();
      throw new AgentException("interrupted sending " + type, e);
    }
  }

  /** Closes the channel when the frame being written has been blocked for the stall limit. */
  private void failIfStalled(Duration stall) {
    if (sender.stalledNanos() >= stall.toNanos()) {
      fail(
          new AgentChannelClosedException(
              "the guest agent over "
                  + transport.describe()
                  + " has read nothing for "
                  + stall.toMillis()
                  + " ms: channel closed",
              null));
    }
  }

  /**
   * Ends the channel for good: records the cause, closes the stream (which unblocks a stalled
   * writer and the reader) and fails every pending call. Idempotent.
   */
  private void fail(IOException cause) {
    IOException f;
    synchronized (pending) {
      IOException current = failure;
      if (current == null) {
        current =
            cause instanceof AgentChannelClosedException
                ? cause
                : new AgentChannelClosedException(
                    "channel " + transport.describe() + " closed", cause);
        failure = current;
      }
      f = current;
    }
    sender.close(f);
    try {
      connection.close();
    } catch (IOException e) {
      LOG.debug("closing {}: {}", transport.describe(), e.getMessage());
    }
    failPending(f);
  }

  @SuppressWarnings("ModifyCollectionInEnhancedForLoop") // ConcurrentHashMap: weakly consistent
  private void failPending(IOException f) {
    for (Integer id : pending.keySet()) {
      Handler h = pending.remove(id);
      if (h != null) {
        try {
          h.onClosed(f);
        } catch (RuntimeException e) {
          LOG.debug("a handler failed while the channel closed", e);
        }
      }
    }
  }

  private void readLoop() {
    FrameReader r = new FrameReader(connection.input());
    Throwable cause = null;
    long windowStart = System.nanoTime();
    int errorsInWindow = 0;
    long loggedInWindow = 0;
    try {
      while (!closed.get() && failure == null) {
        Frame f;
        try {
          f = r.read();
        } catch (ProtocolException e) {
          long now = System.nanoTime();
          if (now - windowStart > FRAMING_ERROR_WINDOW.toNanos()) {
            if (errorsInWindow > loggedInWindow) {
              LOG.warn(
                  "{} malformed frames from the agent over {} in the last {} s",
                  errorsInWindow,
                  transport.describe(),
                  FRAMING_ERROR_WINDOW.toSeconds());
            }
            windowStart = now;
            errorsInWindow = 0;
            loggedInWindow = 0;
          }
          errorsInWindow++;
          if (loggedInWindow == 0) { // one line per window; the rest are summarised
            loggedInWindow = 1;
            LOG.warn(
                "bad frame from agent over {}: {}",
                transport.describe(),
                LogText.clean(String.valueOf(e.getMessage())));
          }
          if (errorsInWindow > MAX_FRAMING_ERRORS) {
            cause =
                new AgentChannelClosedException(
                    "the agent over "
                        + transport.describe()
                        + " sent more than "
                        + MAX_FRAMING_ERRORS
                        + " malformed frames within "
                        + FRAMING_ERROR_WINDOW.toSeconds()
                        + " s: channel closed",
                    e);
            LOG.warn("{}", cause.getMessage());
            break;
          }
          if (!r.resync()) {
            break;
          }
          continue;
        }
        if (f == null) {
          break;
        }
        Handler h = pending.get(f.requestId());
        if (h == null) {
          LOG.debug("unsolicited {} from agent over {}", LogText.clean(f), transport.describe());
          continue;
        }
        boolean finished;
        try {
          finished = h.onFrame(f);
        } catch (RuntimeException e) {
          // a listener broke its contract: fail that call, keep serving the others
          LOG.warn(
              "handling {} from agent over {} failed", LogText.clean(f), transport.describe(), e);
          h.onClosed(new AgentException("handling " + f + " failed", e));
          finished = true;
        }
        if (finished) {
          pending.remove(f.requestId(), h);
        }
      }
    } catch (IOException | RuntimeException | Error e) {
      cause = e; // whatever stopped the reader, no call may wait for an answer that cannot come
    }
    fail(
        cause instanceof AgentChannelClosedException closedCause
            ? closedCause
            : new AgentChannelClosedException(
                "channel " + transport.describe() + " closed", cause));
    if (cause instanceof Error err && !(cause instanceof StackOverflowError)) {
      throw err;
    }
  }

  /** Whether the channel is open (not closed by us, not ended by the peer). */
  public boolean isOpen() {
    return !closed.get() && failure == null;
  }

  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    // fails every pending call at once (the reader may be stuck in a handler), closes the stream
    fail(
        new AgentChannelClosedException(
            "channel " + transport.describe() + " closed by the host", null));
    try {
      reader.join(1000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Collects output up to a limit. */
  private static final class Bounded {
    private final long limit;
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
    boolean over;

    Bounded(long limit) {
      this.limit = limit;
    }

    /** Keeps what fits and returns it (the chunk itself when all of it fits). */
    byte[] add(byte[] chunk) {
      long room = limit - buf.size();
      if (room < chunk.length) {
        over = true;
      }
      int keep = (int) Math.max(0, Math.min(room, chunk.length));
      buf.write(chunk, 0, keep);
      return keep == chunk.length ? chunk : Arrays.copyOf(chunk, keep);
    }

    byte[] bytes() {
      return buf.toByteArray();
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
