package dev.agentvm.network.egress;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Threads;
import dev.agentvm.protocol.EgressSpec;
import dev.agentvm.protocol.StreamCredit;
import dev.agentvm.protocol.StreamFrame;
import dev.agentvm.protocol.StreamInbox;
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
import javax.net.ssl.SSLContext;
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
  static final int WINDOW = 128 * 1024;

  /** Records kept for {@link #log()}: the most recent. */
  public static final int LOG_SIZE = 1000;

  private static final long POLL_MILLIS = 500;
  private static final Duration SEND_WAIT = Duration.ofSeconds(30);

  private final String name;
  private final int port;
  private final EgressResolver resolver;
  private final EgressLimits limits;
  private final Consumer<EgressRecord> listener;
  private final java.util.function.@Nullable Supplier<EgressCa> caSource;
  private volatile @Nullable EgressCa ca; // from caSource, on first need
  private final @Nullable SSLContext upstreamTls;
  private final ExecutorService threads;
  private final AtomicLong totalBytes = new AtomicLong();
  private final ArrayDeque<EgressRecord> log = new ArrayDeque<>(); // guarded by itself
  private final AtomicBoolean closed = new AtomicBoolean();

  /** Connections holding a slot: from OPEN until their worker has finished (not their RESET). */
  private final java.util.concurrent.atomic.AtomicInteger active =
      new java.util.concurrent.atomic.AtomicInteger();

  private final java.util.Set<Conn> live = ConcurrentHashMap.newKeySet();
  private final AtomicLong refusedAtLimit = new AtomicLong();
  private volatile long refusalLoggedNanos;

  /** One thread for every proxy's idle check: a proxy costs no thread of its own. */
  private static final java.util.concurrent.ScheduledExecutorService WATCHDOG =
      Executors.newSingleThreadScheduledExecutor(Threads.namedDaemons("agentvm-egress-watchdog"));

  private java.util.concurrent.@Nullable ScheduledFuture<?> watch; // guarded by this
  private volatile EgressPolicy policy;
  private volatile @Nullable Session session;

  private EgressProxy(Builder b) {
    this.name = b.name;
    this.port = b.port;
    this.resolver = b.resolver;
    this.limits = b.limits;
    this.listener = b.listener;
    this.caSource = b.caSource;
    this.upstreamTls = b.upstreamTls;
    this.policy = b.policy;
    // at most four threads per slot (two relay, two more for a terminated TLS): the slot count
    // bounds the pool
    this.threads = Executors.newCachedThreadPool(Threads.numberedDaemons("agentvm-egress-" + name));
  }

  /** Checks for idle connections while attached (a detached proxy has none). */
  private synchronized void watch(boolean on) {
    java.util.concurrent.ScheduledFuture<?> w = watch;
    if (on && w == null) {
      watch = WATCHDOG.scheduleWithFixedDelay(this::cutIdle, 1, 1, TimeUnit.SECONDS);
    } else if (!on && w != null) {
      w.cancel(false);
      watch = null;
    }
  }

  /**
   * Ends connections with no byte either way for the idle timeout, whatever their threads are
   * blocked in (a connect, a write to a server that stopped reading).
   */
  private void cutIdle() {
    long now = System.nanoTime();
    for (Conn c : live) {
      try {
        if (now - c.lastActivity > limits.idleTimeout().toNanos()) {
          c.reset("idle for " + limits.idleTimeout());
        }
      } catch (RuntimeException e) { // an exception here would cancel the check for good
        LOG.warn("egress of {}: the idle check failed for stream {}", name, c.sid, e);
      }
    }
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
   * HTTPS_PROXY}, {@code ALL_PROXY} and {@code NO_PROXY} (loopback), upper and lower case. With
   * secrets in the policy also each secret's placeholder under its name, and the trust variables
   * that name the files holding the egress CA ({@code SSL_CERT_FILE}, {@code REQUESTS_CA_BUNDLE},
   * {@code CURL_CA_BUNDLE}, {@code GIT_SSL_CAINFO}: the guest's own roots and the CA; {@code
   * NODE_EXTRA_CA_CERTS}: the CA).
   */
  public Map<String, String> environment() {
    String url = proxyUrl();
    String none = "localhost,127.0.0.1,::1";
    Map<String, String> env = new java.util.LinkedHashMap<>();
    for (String k : List.of("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")) {
      env.put(k, url);
      env.put(k.toLowerCase(java.util.Locale.ROOT), url);
    }
    env.put("NO_PROXY", none);
    env.put("no_proxy", none);
    EgressPolicy p = policy;
    for (EgressSecret secret : p.secrets()) {
      env.put(secret.name(), secret.placeholder());
    }
    if (caSource != null && !p.secrets().isEmpty()) {
      for (String k :
          List.of("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")) {
        env.put(k, GUEST_BUNDLE);
      }
      env.put("NODE_EXTRA_CA_CERTS", GUEST_CA);
    }
    return Map.copyOf(env);
  }

  /** Where the guest keeps the egress CA's certificate. */
  public static final String GUEST_CA = "/etc/agentvm/egress-ca.pem";

  /** The guest's own roots (if it has a bundle) and the egress CA, for the trust variables. */
  public static final String GUEST_BUNDLE = "/etc/agentvm/egress-ca-bundle.pem";

  // $1: the CA's PEM. The bundle: the guest's roots (the first system bundle found) and the CA;
  // the CA is also added to that system bundle once, for programs that read no variable.
  private static final String INSTALL_TRUST =
      """
      set -e
      mkdir -p /etc/agentvm
      printf '%s' "$1" > /etc/agentvm/egress-ca.pem.tmp
      mv /etc/agentvm/egress-ca.pem.tmp /etc/agentvm/egress-ca.pem
      roots=
      for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
        if [ -f "$f" ]; then roots="$f"; break; fi
      done
      if [ -n "$roots" ] && ! grep -qF "$(sed -n 2p /etc/agentvm/egress-ca.pem)" "$roots"; then
        cat /etc/agentvm/egress-ca.pem >> "$roots" 2>/dev/null || true
      fi
      { if [ -n "$roots" ]; then cat "$roots"; fi; cat /etc/agentvm/egress-ca.pem; } \
        > /etc/agentvm/egress-ca-bundle.pem.tmp
      mv /etc/agentvm/egress-ca-bundle.pem.tmp /etc/agentvm/egress-ca-bundle.pem
      """;

  /** The policy new connections are decided against. */
  public EgressPolicy policy() {
    return policy;
  }

  /**
   * Changes the policy; connections already open keep going, new ones follow it. A policy that
   * brings the first secrets installs the CA in an attached guest first.
   *
   * @throws IOException if the guest did not take the CA (the policy is not changed)
   */
  public void policy(EgressPolicy p) throws IOException {
    Objects.requireNonNull(p, "policy");
    Session s = session;
    if (s != null && !p.secrets().isEmpty()) {
      installTrust(s, SEND_WAIT);
    }
    this.policy = p;
    warnMissingValues(p);
  }

  /** The CA, made or loaded on first need; null without interception. */
  private @Nullable EgressCa authority() {
    EgressCa a = ca;
    java.util.function.Supplier<EgressCa> source = caSource;
    if (a == null && source != null) {
      a = source.get();
      ca = a;
    }
    return a;
  }

  /** Puts the CA where the guest's programs look, once per attach. */
  private void installTrust(Session s, Duration deadline) throws IOException {
    if (caSource == null || s.trustInstalled) {
      return;
    }
    EgressCa authority = Objects.requireNonNull(authority());
    dev.agentvm.core.agent.ExecResult r =
        s.agent.exec(
            dev.agentvm.core.agent.ExecRequest.command(
                    "sh", "-c", INSTALL_TRUST, "sh", authority.certificatePem())
                .withTimeout(deadline));
    if (r.exitCode() != 0) {
      throw new IOException(
          "installing the egress CA in the guest failed (exit "
              + r.exitCode()
              + "): "
              + LogText.clean(r.stderrText()));
    }
    s.trustInstalled = true;
  }

  private void warnMissingValues(EgressPolicy p) {
    List<String> missing =
        p.secrets().stream().filter(x -> !x.hasValue()).map(EgressSecret::name).toList();
    if (!missing.isEmpty()) {
      LOG.warn(
          "egress of {}: secrets {} have no value in this process: requests to their domains carry"
              + " the placeholder until the policy is given again with the values",
          name,
          missing);
    }
    if (caSource == null && !p.secrets().isEmpty()) {
      LOG.warn(
          "egress of {}: the proxy has no CA (EgressProxy.Builder.interception): secrets are not"
              + " put into requests",
          name);
    }
  }

  /** The most recent connections, oldest first (at most {@link #LOG_SIZE}). */
  public List<EgressRecord> log() {
    synchronized (log) {
      return List.copyOf(log);
    }
  }

  /** Connections open now. */
  public int openConnections() {
    return active.get();
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
    watch(true);
    EgressPolicy p = policy;
    if (!p.secrets().isEmpty()) {
      try {
        installTrust(s, deadline);
      } catch (IOException | RuntimeException e) {
        s.end("the guest did not take the egress CA");
        try {
          agent.stopEgress(s.egress.join(), Duration.ofSeconds(2));
        } catch (IOException ex) {
          e.addSuppressed(ex);
        }
        throw e;
      }
      warnMissingValues(p);
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
    live.forEach(c -> c.reset("the proxy was closed"));
    threads.shutdownNow();
    watch(false);
  }

  private void record(EgressRecord r, boolean requested) {
    synchronized (log) {
      if (log.size() == LOG_SIZE) {
        log.removeFirst();
      }
      log.addLast(r);
    }
    if (requested) {
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
    } else {
      // a connection that asked for nothing (a port probe): the guest decides how many of these
      LOG.debug("egress of {}: stream {} sent no request ({})", name, r.stream(), r.end());
    }
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
    volatile boolean trustInstalled;

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
          if (active.incrementAndGet() > limits.maxConnections()) {
            active.decrementAndGet();
            refuseAtLimit(f.stream());
            return;
          }
          Conn n = new Conn(this, f.stream());
          conns.put(n.sid, n);
          live.add(n);
          try {
            threads.execute(n::run);
          } catch (java.util.concurrent.RejectedExecutionException e) {
            n.reset("the proxy is closed");
            n.release();
          }
        }
        case DATA -> {
          if (c != null && !c.inbox.offer(f.data())) {
            c.reset(c.inbox.ended() ? "data after close" : "window exceeded");
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
      if (session == this) {
        watch(false); // a paused sandbox's proxy checks nothing until it is attached again
      }
    }

    void end(String why) {
      conns.values().forEach(c -> c.abort(why));
    }

    /**
     * Refuses a stream over the limit, on the reader thread: a RESET, and a summary in the log at
     * most every 10 s (a guest could open thousands a second), no record each.
     */
    @SuppressWarnings("FutureReturnValueIgnored") // a lost RESET only leaves the guest's own slot
    void refuseAtLimit(int sid) {
      send(
          StreamFrame.reset(
              sid, "egress limit: " + limits.maxConnections() + " connections are open already"));
      long n = refusedAtLimit.incrementAndGet();
      long now = System.nanoTime();
      if (now - refusalLoggedNanos > TimeUnit.SECONDS.toNanos(10)) {
        refusalLoggedNanos = now;
        LOG.warn(
            "egress of {}: {} connections refused so far at the limit of {}",
            name,
            n,
            limits.maxConnections());
      }
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

  /** One guest connection; its worker thread owns it from OPEN until {@link #release}. */
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
    final AtomicBoolean released = new AtomicBoolean();
    volatile long lastActivity = System.nanoTime();
    volatile @Nullable Socket server;
    volatile @Nullable TlsInterception tls;
    private int ungranted; // the worker's: bytes passed on and not yet granted back
    volatile String end = "closed";
    // what the request asked for and what was decided; written by the worker before it relays
    volatile String host = "?";
    volatile int port;
    volatile String address = "";
    volatile boolean allowed;
    volatile String rule = "request";
    volatile String reason = "";
    volatile boolean requested; // a request head came (an empty connection is logged at DEBUG)
    volatile boolean guestClosed; // the guest's CLOSE was taken from the inbox
    volatile boolean closeSent; // the host's CLOSE was queued

    Conn(Session s, int sid) {
      this.s = s;
      this.sid = sid;
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
        try {
          // the guest forgets a stream only on RESET or both CLOSEs: when both sides closed, the
          // stream ended cleanly (a RESET now could drop the last response bytes in the guest)
          if (guestClosed && closeSent) {
            abort(end);
          } else {
            reset(end);
          }
        } finally {
          release();
        }
      }
    }

    private void serve() throws IOException, InterruptedException {
      Growable head = new Growable();
      int headEnd = readHead(head);
      if (headEnd == 0) {
        end = "the guest sent no request";
        return;
      }
      requested = true;
      if (headEnd < 0) {
        reason = "the request head is larger than " + ProxyRequest.MAX_HEAD + " bytes";
        answerAndEnd(431, reason);
        return;
      }
      ProxyRequest req;
      try {
        req = ProxyRequest.parse(Arrays.copyOf(head.buf, headEnd));
      } catch (ProxyRequest.Refused r) {
        reason = r.getMessage() == null ? "bad request" : r.getMessage();
        answerAndEnd(r.status, reason);
        return;
      }
      byte[] rest = Arrays.copyOfRange(head.buf, headEnd, head.len);
      EgressPolicy p = policy;
      EgressDecision d = p.decide(req.host(), req.port(), resolver);
      host = d.host();
      port = d.port();
      allowed = d.allowed();
      rule = d.rule();
      reason = d.reason();
      if (!d.allowed()) {
        answerAndEnd(403, "egress denied (" + d.rule() + "): " + d.reason());
        return;
      }
      long bodyLength = 0;
      if (!req.isConnect()) {
        bodyLength = req.contentLength();
        if (bodyLength < 0) {
          denyAfterDecision(
              411,
              "request",
              "a request body without Content-Length (chunked) is not forwarded over plain HTTP");
          return;
        }
      }
      boolean raw = p.rawTunnelPorts().contains(d.port());
      List<EgressSecret> bound =
          req.isConnect() && !raw && caSource != null && AddressBlock.literal(d.host()).isEmpty()
              ? p.secretsFor(d.host())
              : List.of();
      Socket direct = connect(d.addresses(), d.port());
      if (direct == null) {
        answerAndEnd(502, "cannot connect to " + d.host() + ":" + d.port() + ": " + end);
        return;
      }
      Socket sock = bound.isEmpty() ? direct : terminate(direct, d, bound);
      if (sock == null) {
        answerAndEnd(502, "TLS to " + d.host() + ":" + d.port() + " failed: " + end);
        return;
      }
      end = "closed";
      String tunnelHost = null;
      if (req.isConnect()) {
        sendData("HTTP/1.1 200 Connection established\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        tunnelHost = d.host();
      } else {
        byte[] originHead = req.originHead();
        count(out, originHead.length);
        OutputStream o = sock.getOutputStream();
        o.write(originHead);
        o.flush();
      }
      CompletableFuture<Void> down = CompletableFuture.runAsync(() -> downstream(sock), threads);
      try {
        upstream(sock, rest, tunnelHost, raw, bodyLength);
      } catch (IOException | InterruptedException | RuntimeException e) {
        reset(e.getMessage() == null ? e.toString() : e.getMessage()); // wakes downstream
        throw e;
      } finally {
        try {
          down.get(); // the slot is freed only after both threads: they end once the stream does
        } catch (ExecutionException e) {
          // downstream reset the stream itself
        }
      }
    }

    /**
     * Terminates the tunnel's TLS on the host for the secrets bound to its domain: the socket the
     * guest's bytes go into instead of the server's, or null (the reason in {@link #end}).
     */
    private @Nullable Socket terminate(Socket sock, EgressDecision d, List<EgressSecret> bound) {
      TlsInterception t = null;
      try {
        EgressCa authority = Objects.requireNonNull(authority());
        SSLContext upstream = upstreamTls != null ? upstreamTls : SSLContext.getDefault();
        t =
            TlsInterception.open(
                sock, d.host(), d.port(), bound, authority, upstream, limits.connectTimeout());
        tls = t;
        Socket guestEnd = t.guestEnd();
        server = guestEnd;
        if (gone.get()) { // reset while the TLS was made: teardown may have missed these
          t.close();
          closeQuietly(guestEnd);
          return null;
        }
        guestEnd.setSoTimeout((int) POLL_MILLIS);
        reason =
            reason
                + "; TLS terminated on the host for "
                + bound.stream().map(EgressSecret::name).toList();
        t.start(
            threads,
            why -> {
              allowed = false;
              rule = "secret";
              reason = LogText.clean(why);
              end = reason;
            });
        return guestEnd;
      } catch (IOException | java.security.NoSuchAlgorithmException | RuntimeException e) {
        closeQuietly(sock);
        if (t != null) {
          t.close();
          closeQuietly(t.guestEnd());
        }
        end = e.getMessage() == null ? e.toString() : LogText.clean(e.getMessage());
        return null;
      }
    }

    /** A denial found after the policy allowed the destination (the request's own shape). */
    private void denyAfterDecision(int status, String check, String why)
        throws IOException, InterruptedException {
      allowed = false;
      rule = check;
      reason = why;
      answerAndEnd(status, why);
    }

    /**
     * Reads the request head into {@code head}: the length of the head (through its blank line), 0
     * when the guest closed before sending anything, -1 when it is larger than allowed.
     */
    private int readHead(Growable head) throws IOException, InterruptedException {
      long deadline = System.nanoTime() + limits.requestTimeout().toNanos();
      while (true) {
        if (System.nanoTime() > deadline) {
          throw new IOException("no whole proxy request within " + limits.requestTimeout());
        }
        byte[] c = inbox.take(POLL_MILLIS);
        if (StreamInbox.timedOut(c)) {
          continue;
        }
        if (StreamInbox.isEnd(c)) {
          guestClosed = true;
          if (head.len > 0) {
            throw new IOException("the guest closed inside its proxy request");
          }
          return 0;
        }
        lastActivity = System.nanoTime();
        int from = Math.max(0, head.len - 3);
        head.append(c);
        grant(c.length);
        int at = ProxyRequest.headEnd(head.buf, from, head.len);
        if (at >= 0) {
          return at;
        }
        if (head.len > ProxyRequest.MAX_HEAD) {
          return -1;
        }
      }
    }

    private @Nullable Socket connect(List<InetAddress> addresses, int port) {
      long deadline = System.nanoTime() + limits.connectTimeout().toNanos();
      String last = "";
      for (InetAddress a : addresses) {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0 || gone.get()) {
          break;
        }
        Socket sock = new Socket();
        server = sock; // so that a reset or the watchdog can close it while it connects
        try {
          sock.connect(new InetSocketAddress(a, port), (int) left);
          sock.setSoTimeout((int) POLL_MILLIS);
          address = a.getHostAddress();
          if (gone.get()) {
            closeQuietly(sock);
            return null;
          }
          return sock;
        } catch (IOException e) {
          closeQuietly(sock);
          last = a.getHostAddress() + ": " + e.getMessage();
        }
      }
      if (!gone.get()) { // a reset stream keeps the reason it was reset for
        end = last.isEmpty() ? "no time left to connect" : last;
      }
      return null;
    }

    /**
     * Guest to server. Plain HTTP: exactly the request's body, nothing after it (a second request
     * on the connection could name another server). A tunnel: its first bytes must be a TLS
     * ClientHello naming the CONNECT's host, unless the port is a raw tunnel port.
     */
    private void upstream(
        Socket sock, byte[] first, @Nullable String tunnelHost, boolean raw, long bodyLength)
        throws IOException, InterruptedException {
      OutputStream o = sock.getOutputStream();
      byte[] c = first;
      boolean granted = true; // the bytes after the head were granted when the head was read
      if (tunnelHost == null) {
        long body = bodyLength;
        while (body > 0 && !gone.get()) {
          if (c.length > 0) {
            lastActivity = System.nanoTime();
            int n = (int) Math.min(body, c.length);
            forward(o, c, n);
            body -= n;
            if (!granted) {
              grant(c.length);
            }
            granted = false;
            if (body == 0) {
              break;
            }
          }
          c = inbox.take(POLL_MILLIS);
          granted = false;
          if (StreamInbox.timedOut(c)) {
            continue;
          }
          if (StreamInbox.isEnd(c)) {
            guestClosed = true;
            throw new IOException("the guest closed inside its request body");
          }
        }
        drain(Long.MAX_VALUE);
        return;
      }
      Growable hello = new Growable();
      boolean checked = raw;
      while (!gone.get()) {
        if (c.length > 0) {
          lastActivity = System.nanoTime();
          if (checked) {
            forward(o, c, c.length);
          } else {
            hello.append(c);
            checked = helloChecked(hello, tunnelHost);
            if (checked) {
              forward(o, hello.buf, hello.len);
            }
          }
          if (!granted) {
            grant(c.length);
          }
        }
        granted = false;
        c = inbox.take(POLL_MILLIS);
        if (StreamInbox.timedOut(c)) {
          c = new byte[0];
          continue;
        }
        if (StreamInbox.isEnd(c)) {
          guestClosed = true;
          if (!checked) {
            throw refused("sni", "the tunnel ended before its TLS ClientHello");
          }
          sock.shutdownOutput();
          return;
        }
      }
    }

    /**
     * Takes and drops what the guest still sends, granting it, until it closes or {@code maxNanos}
     * passed.
     */
    private void drain(long maxNanos) throws IOException, InterruptedException {
      long start = System.nanoTime();
      while (!gone.get() && System.nanoTime() - start < maxNanos) {
        byte[] c = inbox.take(POLL_MILLIS);
        if (StreamInbox.isEnd(c)) {
          guestClosed = true;
          return;
        }
        if (!StreamInbox.timedOut(c)) {
          grant(c.length);
        }
      }
    }

    /** Whether the tunnel's first bytes may pass: false while they are not enough to tell. */
    private boolean helloChecked(Growable bytes, String tunnelHost) throws IOException {
      ClientHello.Parsed p = ClientHello.parse(bytes.buf, bytes.len);
      switch (p.status()) {
        case INCOMPLETE -> {
          if (bytes.len >= ClientHello.MAX_RECORD) {
            throw refused(
                "sni", "a TLS ClientHello larger than " + ClientHello.MAX_RECORD + " bytes");
          }
          return false;
        }
        case MALFORMED -> throw refused("sni", "a malformed TLS ClientHello: " + p.detail());
        case NOT_TLS ->
            throw refused(
                "sni",
                "a tunnel to port "
                    + port
                    + " carries TLS only (raw tunnels: the policy's rawTunnelPorts)");
        case NO_SERVER_NAME -> {
          if (AddressBlock.literal(tunnelHost).isPresent()) {
            return true; // TLS to an address has no name to send
          }
          throw refused("sni", "a TLS ClientHello without a server name");
        }
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
      }
      throw new IllegalStateException("unreachable");
    }

    private IOException refused(String check, String why) {
      allowed = false;
      rule = check;
      reason = why;
      return new IOException("egress denied (" + check + "): " + why);
    }

    private void forward(OutputStream o, byte[] c, int n) throws IOException {
      if (n == 0) {
        return;
      }
      o.write(c, 0, n);
      o.flush();
      count(out, n);
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
            continue; // the watchdog ends idle connections
          }
          if (n < 0) {
            closeSent = true;
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
          continue; // the watchdog ends a guest that never grants
        }
        byte[] chunk =
            off == 0 && n == bytes.length ? bytes : Arrays.copyOfRange(bytes, off, off + n);
        if (gone.get()) {
          // reset (by the guest, a limit or a second OPEN): its RESET must be its last frame
          throw new IOException("the stream ended");
        }
        CompletableFuture<Void> written = s.send(StreamFrame.data(sid, chunk));
        long until = System.nanoTime() + SEND_WAIT.toNanos();
        while (true) {
          try {
            written.get(POLL_MILLIS, TimeUnit.MILLISECONDS);
            break;
          } catch (TimeoutException e) {
            if (gone.get()) {
              throw new IOException("the stream ended", e);
            }
            if (System.nanoTime() > until) {
              throw new IOException("the guest has not read the channel for " + SEND_WAIT, e);
            }
          } catch (ExecutionException e) {
            throw new IOException("cannot send to the guest: " + e.getCause(), e);
          }
        }
        off += n;
      }
    }

    /** Answers the request with an error page, then ends the stream. */
    private void answerAndEnd(int status, String why) throws IOException, InterruptedException {
      if (gone.get()) {
        return; // reset meanwhile (the guest opened it twice, say): nothing more goes on it
      }
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
      Growable answer = new Growable();
      answer.append(head.getBytes(StandardCharsets.US_ASCII));
      answer.append(body);
      sendData(Arrays.copyOf(answer.buf, answer.len));
      closeSent = true;
      sendQuietly(StreamFrame.close(sid));
      // let the guest read the answer and close its side; whatever it still sends is dropped
      drain(TimeUnit.SECONDS.toNanos(5));
    }

    /** Grants credit back in batches of a quarter window: fewer frames on the shared channel. */
    private void grant(int n) {
      ungranted += n;
      if (ungranted >= WINDOW / 4) {
        sendQuietly(StreamFrame.window(sid, ungranted));
        ungranted = 0;
      }
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

    /** Ends the stream here and tells the guest (any thread); nothing of it is sent afterwards. */
    void reset(String why) {
      if (!gone.compareAndSet(false, true)) {
        return;
      }
      if ("closed".equals(end)) {
        end = why;
      }
      sendQuietly(StreamFrame.reset(sid, why));
      teardown();
    }

    /** Ends the stream here without a word (the guest reset it, or both sides closed). */
    void abort(String why) {
      if (!gone.compareAndSet(false, true)) {
        return;
      }
      if ("closed".equals(end) && !"closed".equals(why)) {
        end = why;
      }
      teardown();
    }

    /**
     * Closes the server's socket and wakes the threads. The slot and the record wait for the worker
     * ({@link #release}).
     */
    private void teardown() {
      s.conns.remove(sid, this);
      credit.close();
      inbox.fail(end);
      Socket sock = server;
      if (sock != null) {
        closeQuietly(sock);
      }
      TlsInterception t = tls;
      if (t != null) {
        t.close();
      }
    }

    /** The worker is done: the slot is free and the record written; once. */
    void release() {
      if (!released.compareAndSet(false, true)) {
        return;
      }
      live.remove(this);
      active.decrementAndGet();
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
              LogText.clean(end)),
          requested);
    }
  }

  /** A byte buffer that grows by doubling: appends cost their own length, not the whole. */
  private static final class Growable {
    byte[] buf = new byte[1024];
    int len;

    void append(byte[] b) {
      if (len + b.length > buf.length) {
        buf = Arrays.copyOf(buf, Math.max(buf.length * 2, len + b.length));
      }
      System.arraycopy(b, 0, buf, len, b.length);
      len += b.length;
    }
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
    private java.util.function.@Nullable Supplier<EgressCa> caSource;
    private @Nullable SSLContext upstreamTls;

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

    /**
     * Lets the proxy terminate HTTPS to the domains the policy's secrets are bound to, with
     * certificates from {@code authority} (installed in the guest on attach). Without it secrets
     * are not put into requests.
     */
    public Builder interception(EgressCa authority) {
      Objects.requireNonNull(authority, "authority");
      this.caSource = () -> authority;
      return this;
    }

    /** Like {@link #interception(EgressCa)}, the authority made or loaded on first need. */
    public Builder interception(java.util.function.Supplier<EgressCa> authority) {
      this.caSource = Objects.requireNonNull(authority, "authority");
      return this;
    }

    /**
     * The trust the host verifies servers with when it terminates a connection (default the JDK's
     * default context: its {@code cacerts}).
     */
    public Builder upstreamTls(SSLContext context) {
      this.upstreamTls = Objects.requireNonNull(context, "context");
      return this;
    }

    public EgressProxy build() {
      return new EgressProxy(this);
    }
  }
}
