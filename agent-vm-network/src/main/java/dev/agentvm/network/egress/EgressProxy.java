package dev.agentvm.network.egress;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Threads;
import dev.agentvm.protocol.EgressSpec;
import dev.agentvm.protocol.StreamCredit;
import dev.agentvm.protocol.StreamFrame;
import dev.agentvm.protocol.StreamInbox;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The host's end of a guest's egress: an HTTP proxy whose client connections arrive as streams over
 * the agent channel. For each one it reads the proxy request, decides it against the {@link
 * EgressPolicy}, answers {@code 403} with the reason or connects to the checked addresses itself
 * and relays, and records the connection ({@link EgressRecord}).
 *
 * <p>A {@code CONNECT} tunnel's first bytes are read before they are forwarded: a TLS ClientHello
 * whose server name differs from the CONNECT's host ends the tunnel (a fronted name would reach
 * another service behind the same address). Plain HTTP is forwarded one request per connection.
 *
 * <pre>{@code
 * EgressProxy proxy = EgressProxy.builder(policy).build();
 * proxy.attach(agent, Duration.ofSeconds(10)); // again after every reconnect of the agent
 * // in the guest: HTTP_PROXY=http://127.0.0.1:3128 (EgressProxy.proxyUrl())
 * }</pre>
 */
public final class EgressProxy implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(EgressProxy.class);

  /** The guest's loopback port unless the builder says otherwise. */
  public static final int DEFAULT_PORT = 3128;

  /** How many bytes each side may send on a stream before the other grants more. */
  static final int WINDOW = 256 * 1024;

  /** Records kept for {@link #log()}: the most recent. */
  public static final int LOG_SIZE = 1000;

  private static final long POLL_MILLIS = 500;
  private static final Duration SEND_WAIT = Duration.ofSeconds(30);

  private final String name;
  private final int port;
  private final EgressResolver resolver;
  private final EgressLimits limits;
  private final Consumer<EgressRecord> listener;
  private final ExecutorService threads;
  private final AtomicLong totalBytes = new AtomicLong();
  private final ArrayDeque<EgressRecord> log = new ArrayDeque<>(); // guarded by itself
  private final AtomicBoolean closed = new AtomicBoolean();
  private volatile EgressPolicy policy;
  private volatile @Nullable Session session;

  private EgressProxy(Builder b) {
    this.name = b.name;
    this.port = b.port;
    this.resolver = b.resolver;
    this.limits = b.limits;
    this.listener = b.listener;
    this.policy = b.policy;
    this.threads = Executors.newCachedThreadPool(Threads.numberedDaemons("agentvm-egress-" + name));
  }

  public static Builder builder(EgressPolicy policy) {
    return new Builder(policy);
  }

  /** The proxy's URL as the guest's programs see it: {@code http://127.0.0.1:port}. */
  public String proxyUrl() {
    return "http://127.0.0.1:" + port;
  }

  /**
   * The environment that points a guest's programs at the proxy: {@code HTTP_PROXY}, {@code
   * HTTPS_PROXY}, {@code ALL_PROXY} and {@code NO_PROXY} (loopback), upper and lower case.
   */
  public Map<String, String> environment() {
    String url = proxyUrl();
    String none = "localhost,127.0.0.1,::1";
    return Map.of(
        "HTTP_PROXY", url,
        "http_proxy", url,
        "HTTPS_PROXY", url,
        "https_proxy", url,
        "ALL_PROXY", url,
        "all_proxy", url,
        "NO_PROXY", none,
        "no_proxy", none);
  }

  /** The policy new connections are decided against. */
  public EgressPolicy policy() {
    return policy;
  }

  /** Changes the policy; connections already open keep going, new ones follow it. */
  public void policy(EgressPolicy p) {
    this.policy = Objects.requireNonNull(p, "policy");
  }

  /** The most recent connections, oldest first (at most {@link #LOG_SIZE}). */
  public List<EgressRecord> log() {
    synchronized (log) {
      return List.copyOf(log);
    }
  }

  /** Connections open now. */
  public int openConnections() {
    Session s = session;
    return s == null ? 0 : s.conns.size();
  }

  /**
   * Opens the egress listener in the guest behind {@code agent} (replacing an earlier attach's: its
   * connections end). Call again after the agent reconnects (a resumed sandbox).
   */
  public void attach(AgentClient agent, Duration deadline) throws IOException {
    if (closed.get()) {
      throw new IllegalStateException("the egress proxy of " + name + " is closed");
    }
    Session s = new Session(agent);
    Session old = session;
    session = s;
    if (old != null) {
      old.end("replaced by a new attach");
    }
    try {
      s.egress.complete(
          agent.egress(new EgressSpec(port, WINDOW, limits.maxConnections()), s, deadline));
    } catch (IOException | RuntimeException e) {
      s.egress.completeExceptionally(e);
      s.end("the guest did not open its listener");
      throw e;
    }
    LOG.debug("egress of {}: the guest listens on 127.0.0.1:{}", name, port);
  }

  /** Ends every connection and closes the guest's listener if the agent still answers. */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    Session s = session;
    session = null;
    if (s != null) {
      s.end("the proxy was closed");
      AgentClient.Egress e = s.egress.getNow(null);
      if (e != null) {
        try {
          s.agent.stopEgress(e, Duration.ofSeconds(2));
        } catch (IOException ex) {
          LOG.debug("egress of {}: closing the guest's listener: {}", name, ex.toString());
        }
      }
    }
    threads.shutdownNow();
  }

  private void record(EgressRecord r) {
    synchronized (log) {
      if (log.size() == LOG_SIZE) {
        log.removeFirst();
      }
      log.addLast(r);
    }
    LOG.info(
        "egress of {}: {} {}:{} {} ({}: {}), {} B out, {} B in, {} ms, {}",
        name,
        r.allowed() ? "allowed" : "denied",
        r.host(),
        r.port(),
        r.address(),
        r.rule(),
        r.reason(),
        r.bytesOut(),
        r.bytesIn(),
        r.duration().toMillis(),
        r.end());
    try {
      listener.accept(r);
    } catch (RuntimeException e) {
      LOG.warn("egress of {}: the record listener failed", name, e);
    }
  }

  /** The streams of one attach. */
  private final class Session implements AgentClient.StreamListener {
    final AgentClient agent;
    final CompletableFuture<AgentClient.Egress> egress = new CompletableFuture<>();
    final Map<Integer, Conn> conns = new ConcurrentHashMap<>();

    Session(AgentClient agent) {
      this.agent = agent;
    }

    @Override
    public void onStream(StreamFrame f) {
      Conn c = conns.get(f.stream());
      switch (f.op()) {
        case OPEN -> {
          if (c != null) {
            c.reset("the guest opened stream " + f.stream() + " twice");
            return;
          }
          Conn n = new Conn(this, f.stream());
          if (conns.size() >= limits.maxConnections()) {
            n.refuseAtLimit();
            return;
          }
          conns.put(n.sid, n);
          try {
            threads.execute(n::run);
          } catch (java.util.concurrent.RejectedExecutionException e) {
            n.abort("the proxy is closed");
          }
        }
        case DATA -> {
          if (c != null && !c.inbox.offer(f.data())) {
            c.reset("window exceeded");
          }
        }
        case WINDOW -> {
          if (c != null) {
            c.credit.grant(f.credit());
          }
        }
        case CLOSE -> {
          if (c != null) {
            c.inbox.end();
          }
        }
        case RESET -> {
          if (c != null) {
            c.abort("the guest reset it: " + LogText.clean(f.reason()));
          }
        }
      }
    }

    @Override
    public void onEnd(@Nullable IOException cause) {
      end(cause == null ? "the guest closed its listener" : "the channel closed: " + cause);
    }

    void end(String why) {
      conns.values().forEach(c -> c.abort(why));
    }

    /** Queues a frame; failures end the stream (they mean the channel is gone or flooded). */
    CompletableFuture<Void> send(StreamFrame f) {
      AgentClient.Egress e = egress.getNow(null);
      if (e == null) { // OPEN can arrive before attach has stored the answer: wait for it
        try {
          e = egress.get(SEND_WAIT.toSeconds(), TimeUnit.SECONDS);
        } catch (InterruptedException ex) {
          Thread.currentThread().interrupt();
          return CompletableFuture.failedFuture(ex);
        } catch (ExecutionException | TimeoutException ex) {
          return CompletableFuture.failedFuture(ex);
        }
      }
      return agent.sendStream(e, f);
    }
  }

  /** One guest connection. */
  private final class Conn {
    final Session s;
    final int sid;
    final StreamInbox inbox = new StreamInbox(WINDOW);
    final StreamCredit credit = new StreamCredit(WINDOW);
    final Instant startedAt = Instant.now();
    final long started = System.nanoTime();
    final AtomicLong out = new AtomicLong();
    final AtomicLong in = new AtomicLong();
    final AtomicBoolean gone = new AtomicBoolean();
    volatile long lastActivity = System.nanoTime();
    volatile @Nullable Socket server;
    volatile String end = "closed";
    // what the request asked for and what was decided; written by the worker before it relays
    volatile String host = "?";
    volatile int port;
    volatile String address = "";
    volatile boolean allowed;
    volatile String rule = "request";
    volatile String reason = "";

    Conn(Session s, int sid) {
      this.s = s;
      this.sid = sid;
    }

    void refuseAtLimit() {
      rule = "limit";
      reason = limits.maxConnections() + " connections are open already";
      end = "refused";
      sendQuietly(StreamFrame.reset(sid, "egress limit: " + reason));
      finish();
    }

    void run() {
      try {
        serve();
      } catch (IOException e) {
        reset(e.getMessage() == null ? e.toString() : e.getMessage());
      } catch (InterruptedException e) {
        reset("interrupted");
      } catch (RuntimeException e) {
        LOG.warn("egress of {}: stream {} failed", name, sid, e);
        reset("internal error: " + e);
      } finally {
        Socket sock = server;
        if (sock != null) {
          closeQuietly(sock);
        }
        abort(end);
      }
    }

    private void serve() throws IOException, InterruptedException {
      ByteArrayOutputStream head = new ByteArrayOutputStream();
      byte[] rest = readHead(head);
      if (rest.length == 0 && head.size() == 0) {
        end = "the guest sent no request";
        return;
      }
      ProxyRequest req;
      try {
        req = ProxyRequest.parse(head.toByteArray());
      } catch (ProxyRequest.Refused r) {
        reason = r.getMessage() == null ? "bad request" : r.getMessage();
        answerAndEnd(r.status, reason);
        return;
      }
      EgressDecision d = policy.decide(req.host(), req.port(), resolver);
      host = d.host();
      port = d.port();
      allowed = d.allowed();
      rule = d.rule();
      reason = d.reason();
      if (!d.allowed()) {
        answerAndEnd(403, "egress denied (" + d.rule() + "): " + d.reason());
        return;
      }
      Socket sock = connect(d.addresses(), d.port());
      if (sock == null) {
        answerAndEnd(502, "cannot connect to " + d.host() + ":" + d.port() + ": " + end);
        return;
      }
      server = sock;
      end = "closed";
      if (req.isConnect()) {
        sendData("HTTP/1.1 200 Connection established\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
      } else {
        count(out, rest.length); // counted with the head below
        OutputStream o = sock.getOutputStream();
        byte[] originHead = req.originHead();
        o.write(originHead);
        o.write(rest);
        o.flush();
        count(out, originHead.length);
        rest = new byte[0];
      }
      CompletableFuture<Void> down = CompletableFuture.runAsync(() -> downstream(sock), threads);
      upstream(sock, rest, req.isConnect() ? d.host() : null);
      try {
        down.get();
      } catch (ExecutionException e) {
        // downstream reset the stream itself
      }
    }

    /** Reads the request head into {@code head}; returns the bytes after it. */
    private byte[] readHead(ByteArrayOutputStream head) throws IOException, InterruptedException {
      long deadline = System.nanoTime() + limits.requestTimeout().toNanos();
      byte[] buf = new byte[0];
      while (true) {
        if (System.nanoTime() > deadline) {
          throw new IOException("no whole proxy request within " + limits.requestTimeout());
        }
        byte[] c = inbox.take(POLL_MILLIS);
        if (StreamInbox.timedOut(c)) {
          continue;
        }
        if (StreamInbox.isEnd(c)) {
          if (buf.length > 0) {
            throw new IOException("the guest closed inside its proxy request");
          }
          return buf;
        }
        grant(c.length);
        int from = Math.max(0, buf.length - 3);
        buf = concat(buf, c);
        int endAt =
            ProxyRequest.headEnd(Arrays.copyOfRange(buf, from, buf.length), buf.length - from);
        if (endAt >= 0) {
          head.write(buf, 0, from + endAt);
          return Arrays.copyOfRange(buf, from + endAt, buf.length);
        }
        if (buf.length > ProxyRequest.MAX_HEAD) {
          head.write(buf, 0, buf.length);
          throw new IOException(
              "a proxy request head larger than " + ProxyRequest.MAX_HEAD + " bytes");
        }
      }
    }

    private @Nullable Socket connect(List<InetAddress> addresses, int port) {
      String last = "";
      for (InetAddress a : addresses) {
        Socket sock = new Socket();
        try {
          sock.connect(new InetSocketAddress(a, port), (int) limits.connectTimeout().toMillis());
          sock.setSoTimeout((int) POLL_MILLIS);
          address = a.getHostAddress();
          return sock;
        } catch (IOException e) {
          closeQuietly(sock);
          last = a.getHostAddress() + ": " + e.getMessage();
        }
      }
      end = last;
      return null;
    }

    /** Guest to server; for a tunnel, the TLS server name is checked before anything passes. */
    private void upstream(Socket sock, byte[] first, @Nullable String tunnelHost)
        throws IOException, InterruptedException {
      OutputStream o = sock.getOutputStream();
      byte[] hello = first;
      boolean checked = tunnelHost == null;
      if (!checked && hello.length > 0) {
        checked = helloChecked(hello, Objects.requireNonNull(tunnelHost));
        if (checked) {
          forward(o, hello);
        }
      } else if (hello.length > 0) {
        forward(o, hello);
      }
      while (!gone.get()) {
        byte[] c = inbox.take(POLL_MILLIS);
        if (StreamInbox.timedOut(c)) {
          checkIdle();
          continue;
        }
        if (StreamInbox.isEnd(c)) {
          if (!checked && hello.length > 0) {
            forward(o, hello); // a tunnel that said less than a ClientHello: not TLS
          }
          sock.shutdownOutput();
          return;
        }
        lastActivity = System.nanoTime();
        if (checked) {
          forward(o, c);
          grant(c.length);
          continue;
        }
        hello = concat(hello, c);
        grant(c.length);
        checked = helloChecked(hello, Objects.requireNonNull(tunnelHost));
        if (checked) {
          forward(o, hello);
        }
      }
    }

    /** Whether the tunnel's first bytes may pass: false while they are not enough to tell. */
    private boolean helloChecked(byte[] bytes, String tunnelHost) throws IOException {
      ClientHello.Parsed p = ClientHello.parse(bytes, bytes.length);
      switch (p.status()) {
        case INCOMPLETE -> {
          if (bytes.length >= ClientHello.MAX_RECORD) {
            throw refused(
                "sni", "a TLS ClientHello larger than " + ClientHello.MAX_RECORD + " bytes");
          }
          return false;
        }
        case MALFORMED -> throw refused("sni", "a malformed TLS ClientHello: " + p.detail());
        case SERVER_NAME -> {
          String sni = Objects.requireNonNull(p.serverName());
          if (!sni.equalsIgnoreCase(tunnelHost)) {
            throw refused(
                "sni",
                "the TLS server name "
                    + LogText.clean(sni)
                    + " is not the CONNECT's host "
                    + tunnelHost);
          }
          return true;
        }
        default -> {
          return true; // not TLS, or TLS without a name: the address was decided by the policy
        }
      }
    }

    private IOException refused(String check, String why) {
      allowed = false;
      rule = check;
      reason = why;
      return new IOException("egress denied (" + check + "): " + why);
    }

    private void forward(OutputStream o, byte[] c) throws IOException {
      o.write(c);
      o.flush();
      count(out, c.length);
    }

    /** Server to guest, within the guest's credit. */
    private void downstream(Socket sock) {
      byte[] buf = new byte[StreamFrame.MAX_DATA];
      try {
        InputStream i = sock.getInputStream();
        while (!gone.get()) {
          int n;
          try {
            n = i.read(buf);
          } catch (SocketTimeoutException e) {
            checkIdle();
            continue;
          }
          if (n < 0) {
            sendQuietly(StreamFrame.close(sid));
            return;
          }
          lastActivity = System.nanoTime();
          count(in, n);
          sendData(Arrays.copyOf(buf, n));
        }
      } catch (IOException e) {
        reset(e.getMessage() == null ? e.toString() : e.getMessage());
      } catch (InterruptedException e) {
        reset("interrupted");
      }
    }

    private void checkIdle() throws IOException {
      if (System.nanoTime() - lastActivity > limits.idleTimeout().toNanos()) {
        throw new IOException("idle for " + limits.idleTimeout());
      }
    }

    private void count(AtomicLong dir, long n) throws IOException {
      dir.addAndGet(n);
      if (out.get() + in.get() > limits.maxBytesPerConnection()) {
        throw new IOException(
            "egress limit: more than " + limits.maxBytesPerConnection() + " bytes on a connection");
      }
      if (totalBytes.addAndGet(n) > limits.maxBytesTotal()) {
        throw new IOException(
            "egress limit: more than " + limits.maxBytesTotal() + " bytes in all");
      }
    }

    /** Sends bytes to the guest as DATA frames within its credit, each written before the next. */
    private void sendData(byte[] bytes) throws IOException, InterruptedException {
      int off = 0;
      while (off < bytes.length) {
        int n = credit.take(Math.min(StreamFrame.MAX_DATA, bytes.length - off), POLL_MILLIS);
        if (n < 0) {
          throw new IOException("the stream ended");
        }
        if (n == 0) {
          checkIdle();
          continue;
        }
        byte[] chunk =
            off == 0 && n == bytes.length ? bytes : Arrays.copyOfRange(bytes, off, off + n);
        try {
          s.send(StreamFrame.data(sid, chunk)).get(SEND_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException | TimeoutException e) {
          throw new IOException("cannot send to the guest: " + e, e);
        }
        off += n;
      }
    }

    /** Answers the request with an error page, then ends the stream. */
    private void answerAndEnd(int status, String why) throws IOException, InterruptedException {
      end = "answered " + status;
      byte[] body = (why + "\n").getBytes(StandardCharsets.UTF_8);
      String head =
          "HTTP/1.1 "
              + status
              + " "
              + phrase(status)
              + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
              + body.length
              + "\r\nConnection: close\r\n\r\n";
      sendData(concat(head.getBytes(StandardCharsets.US_ASCII), body));
      sendQuietly(StreamFrame.close(sid));
      // let the guest read the answer and close its side; whatever it still sends is dropped
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (System.nanoTime() < until) {
        byte[] c = inbox.take(POLL_MILLIS);
        if (StreamInbox.isEnd(c)) {
          return;
        }
        if (!StreamInbox.timedOut(c)) {
          grant(c.length);
        }
      }
    }

    private void grant(int n) {
      sendQuietly(StreamFrame.window(sid, n));
    }

    @SuppressWarnings("FutureReturnValueIgnored") // whenComplete handles the failure
    private void sendQuietly(StreamFrame f) {
      s.send(f)
          .whenComplete(
              (ok, e) -> {
                if (e != null) {
                  abort("cannot send to the guest: " + e);
                }
              });
    }

    /** Ends the stream here and tells the guest. */
    void reset(String why) {
      if (!gone.get()) {
        end = why;
        sendQuietly(StreamFrame.reset(sid, why));
      }
      abort(why);
    }

    /** Ends the stream here without a word; records it once. */
    void abort(String why) {
      if (!gone.compareAndSet(false, true)) {
        return;
      }
      if ("closed".equals(end) && !"closed".equals(why)) {
        end = why;
      }
      s.conns.remove(sid, this);
      credit.close();
      inbox.fail(why);
      Socket sock = server;
      if (sock != null) {
        closeQuietly(sock);
      }
      finish();
    }

    private void finish() {
      record(
          new EgressRecord(
              sid,
              startedAt,
              host,
              port,
              address,
              allowed,
              rule,
              LogText.clean(reason),
              out.get(),
              in.get(),
              Duration.ofNanos(System.nanoTime() - started),
              LogText.clean(end)));
    }
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] r = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, r, a.length, b.length);
    return r;
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // nothing left to do
    }
  }

  private static String phrase(int status) {
    return switch (status) {
      case 400 -> "Bad Request";
      case 403 -> "Forbidden";
      case 431 -> "Request Header Fields Too Large";
      case 502 -> "Bad Gateway";
      case 505 -> "HTTP Version Not Supported";
      default -> "Error";
    };
  }

  /** Builds an {@link EgressProxy}. */
  public static final class Builder {
    private final EgressPolicy policy;
    private String name = "sandbox";
    private int port = DEFAULT_PORT;
    private EgressResolver resolver = EgressResolver.SYSTEM;
    private EgressLimits limits = EgressLimits.defaults();
    private Consumer<EgressRecord> listener = r -> {};

    private Builder(EgressPolicy policy) {
      this.policy = Objects.requireNonNull(policy, "policy");
    }

    /** The name in logs and thread names (the sandbox's id). */
    public Builder name(String n) {
      this.name = Objects.requireNonNull(n, "name");
      return this;
    }

    /** The guest's loopback port (default {@link #DEFAULT_PORT}). */
    public Builder port(int p) {
      if (p < 1 || p > 65535) {
        throw new IllegalArgumentException("port must be 1..65535, was " + p);
      }
      this.port = p;
      return this;
    }

    /** How names are resolved (default the JVM's); the policy checks what it returns. */
    public Builder resolver(EgressResolver r) {
      this.resolver = Objects.requireNonNull(r, "resolver");
      return this;
    }

    public Builder limits(EgressLimits l) {
      this.limits = Objects.requireNonNull(l, "limits");
      return this;
    }

    /** Hears every connection's record when it ends (audit); called on a proxy thread. */
    public Builder listener(Consumer<EgressRecord> l) {
      this.listener = Objects.requireNonNull(l, "listener");
      return this;
    }

    public EgressProxy build() {
      return new EgressProxy(this);
    }
  }
}
