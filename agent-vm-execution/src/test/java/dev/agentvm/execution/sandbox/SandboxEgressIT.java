package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.network.egress.EgressLimits;
import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressRecord;
import dev.agentvm.network.egress.EgressResolver;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Egress through the host, from inside a real guest that has no network device: Python's urllib
 * goes through the guest agent's loopback proxy, and the host decides each connection. The servers
 * run on the host's loopback; a test resolver maps the test names to them.
 */
class SandboxEgressIT extends RealLibvirtTest {
  private static final String FETCH =
      """
      import ssl, sys, urllib.request, urllib.error
      ctx = ssl._create_unverified_context()
      for url in sys.argv[1:]:
          try:
              with urllib.request.urlopen(url, timeout=30, context=ctx) as r:
                  print(r.status, r.read().decode().strip())
          except urllib.error.HTTPError as e:
              print(e.code, e.read().decode().strip())
          except Exception as e:
              print('ERR', e)
      """;

  /** CONNECT to one name, then a TLS ClientHello that names another. */
  private static final String FRONTED =
      """
      import socket, ssl, sys
      s = socket.create_connection(('127.0.0.1', 3128), timeout=30)
      s.sendall(('CONNECT allowed.test:%s HTTP/1.1\\r\\n\\r\\n' % sys.argv[1]).encode())
      print(s.recv(200).decode().split('\\r\\n')[0])
      ctx = ssl._create_unverified_context()
      try:
          t = ctx.wrap_socket(s, server_hostname='other.test')
          print('TLS UP', t.version())
      except Exception as e:
          print('ERR', e)
      """;

  @TempDir static Path tmp;
  private static MicroImage image;
  private static HttpServer http;
  private static HttpsServer https;
  private static ServerSocket stall;
  private static final List<Socket> stalled = new CopyOnWriteArrayList<>();
  private static final List<Map<String, List<String>>> seen = new CopyOnWriteArrayList<>();

  @BeforeAll
  static void servers() throws Exception {
    image = MicroImageBuilder.create().packages(MicroImage.PYTHON_GIT).build();
    InetSocketAddress lo = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
    http = HttpServer.create(lo, 16);
    http.createContext(
        "/",
        x -> {
          seen.add(Map.copyOf(x.getRequestHeaders()));
          byte[] body = ("hello " + x.getRequestURI()).getBytes(StandardCharsets.UTF_8);
          x.sendResponseHeaders(200, body.length);
          x.getResponseBody().write(body);
          x.close();
        });
    http.start();
    https = HttpsServer.create(lo, 16);
    https.setHttpsConfigurator(new HttpsConfigurator(selfSigned()));
    https.createContext(
        "/",
        x -> {
          byte[] body = "hello over tls".getBytes(StandardCharsets.UTF_8);
          x.sendResponseHeaders(200, body.length);
          x.getResponseBody().write(body);
          x.close();
        });
    https.start();
    stall = new ServerSocket(0, 16, InetAddress.getLoopbackAddress());
    Thread t =
        new Thread(
            () -> {
              while (!stall.isClosed()) {
                try {
                  stalled.add(stall.accept()); // and never a byte back
                } catch (IOException e) {
                  return;
                }
              }
            },
            "stall-server");
    t.setDaemon(true);
    t.start();
  }

  private static SSLContext selfSigned() throws Exception {
    Path ks = tmp.resolve("tls.p12");
    Process p =
        new ProcessBuilder(
                Path.of(System.getProperty("java.home"), "bin", "keytool").toString(),
                "-genkeypair",
                "-alias",
                "tls",
                "-keyalg",
                "EC",
                "-dname",
                "CN=allowed.test",
                "-validity",
                "2",
                "-storetype",
                "PKCS12",
                "-keystore",
                ks.toString(),
                "-storepass",
                "changeit")
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), out);
    KeyStore store = KeyStore.getInstance("PKCS12");
    try (InputStream in = java.nio.file.Files.newInputStream(ks)) {
      store.load(in, "changeit".toCharArray());
    }
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(store, "changeit".toCharArray());
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(kmf.getKeyManagers(), null, null);
    return ctx;
  }

  @AfterAll
  static void stop() throws IOException {
    http.stop(0);
    https.stop(0);
    stall.close();
    for (Socket s : stalled) {
      s.close();
    }
  }

  /** allowed.test and other.test are the host's loopback, rebind.test another loopback address. */
  private static final EgressResolver NAMES =
      name -> {
        switch (name) {
          case "allowed.test", "other.test" -> {
            return List.of(InetAddress.getByAddress(name, new byte[] {127, 0, 0, 1}));
          }
          case "rebind.test" -> {
            return List.of(InetAddress.getByAddress(name, new byte[] {127, 0, 0, 2}));
          }
          default -> throw new UnknownHostException(name);
        }
      };

  private static EgressPolicy policy() {
    return EgressPolicy.builder()
        .allowDomain("allowed.test")
        .allowDomain("rebind.test")
        .ports(port(http), port(https), stall.getLocalPort())
        .allowBlock("127.0.0.1/32")
        .build();
  }

  private static int port(HttpServer s) {
    return s.getAddress().getPort();
  }

  private static List<String> fetch(Sandbox sb, String... urls) throws IOException {
    List<String> argv = new java.util.ArrayList<>(List.of("python3", "-c", FETCH));
    argv.addAll(List.of(urls));
    ExecResult r = sb.exec(ExecRequest.command(argv.toArray(String[]::new)));
    assertEquals(0, r.exitCode(), r.stderrText());
    return r.stdoutText().lines().toList();
  }

  private static Sandboxes open() {
    return Sandboxes.open(conn)
        .egressResolver(NAMES)
        .egressLimits(EgressLimits.defaults().withMaxConnections(3));
  }

  private static SandboxSpec spec() {
    return SandboxSpec.defaults()
        .withImage(image)
        .withNamePrefix(TestVms.PREFIX + "egress-")
        .withCommandTimeout(Duration.ofSeconds(90))
        .withEgress(policy());
  }

  @Test
  void theGuestReachesOnlyWhatThePolicyAllowsAndHasNoNetworkDevice() throws Exception {
    List<EgressRecord> audit = new CopyOnWriteArrayList<>();
    seen.clear();
    io.micrometer.core.instrument.simple.SimpleMeterRegistry meters =
        new io.micrometer.core.instrument.simple.SimpleMeterRegistry();
    try (Sandboxes sandboxes = open().egressListener(audit::add);
        Sandbox sb = sandboxes.create(spec())) {
      sandboxes.bindTo(meters);
      assertEquals("lo", sb.run("ls /sys/class/net").stdoutText().strip(), "no NIC but lo");
      assertTrue(sb.run("env").stdoutText().contains("HTTPS_PROXY=http://127.0.0.1:3128"));

      String h = "allowed.test:" + port(http);
      List<String> out =
          fetch(
              sb,
              "http://" + h + "/hello?x=1",
              "https://allowed.test:" + port(https) + "/",
              "http://other.test:" + port(http) + "/",
              "http://rebind.test:" + port(http) + "/",
              "http://127.0.0.2:" + port(http) + "/",
              "http://allowed.test:1/");
      assertEquals("200 hello /hello?x=1", out.get(0));
      assertEquals("200 hello over tls", out.get(1));
      assertTrue(out.get(2).startsWith("403 egress denied (domain)"), out.get(2));
      assertTrue(out.get(3).startsWith("403 egress denied (address)"), out.get(3));
      assertTrue(out.get(4).startsWith("403 egress denied (address)"), out.get(4));
      assertTrue(out.get(5).startsWith("403 egress denied (port)"), out.get(5));
      // the guest's own loopback is not proxied (NO_PROXY); without that, the allowed block counts
      ExecResult literal =
          sb.exec(
              ExecRequest.command("python3", "-c", FETCH, "http://127.0.0.1:" + port(http) + "/lit")
                  .withEnv(Map.of("NO_PROXY", "", "no_proxy", "")));
      assertEquals("200 hello /lit", literal.stdoutText().strip());
      Map<String, List<String>> first = seen.get(0);
      assertEquals(List.of(h), first.get("Host"));
      assertFalse(first.containsKey("Proxy-connection"), "proxy headers stay with the proxy");

      // a TLS name that differs from the CONNECT's: the tunnel ends before a byte reaches a server
      ExecResult fronted =
          sb.exec(
              ExecRequest.command(
                  "python3", "-c", FRONTED, Integer.toString(https.getAddress().getPort())));
      List<String> lines = fronted.stdoutText().lines().toList();
      assertEquals("HTTP/1.1 200 Connection established", lines.get(0));
      assertTrue(lines.get(1).startsWith("ERR"), fronted.stdoutText());

      // a record is written when the proxy's worker releases the connection: maybe after EXIT
      waitUntil(
          () -> sb.egressLog().stream().anyMatch(r -> !r.allowed() && r.rule().equals("sni")));
      waitUntil(() -> audit.size() == sb.egressLog().size());
      List<EgressRecord> log = sb.egressLog();
      assertTrue(
          log.stream().anyMatch(r -> !r.allowed() && r.rule().equals("sni")),
          "the fronted tunnel is recorded as denied: " + log);
      EgressRecord ok = log.get(0);
      assertTrue(ok.allowed() && ok.host().equals("allowed.test") && ok.bytesIn() > 0, "" + ok);
      assertEquals("127.0.0.1", ok.address());
      assertEquals(log, List.copyOf(audit), "the listener heard every record");
      assertEquals(
          1.0,
          meters
              .get("agentvm.egress.connections")
              .tag("outcome", "denied")
              .tag("check", "sni")
              .counter()
              .count());
      assertTrue(
          meters.get("agentvm.egress.traffic").tag("direction", "in").counter().count()
              >= ok.bytesIn());

      // a new policy applies to the next connection
      sb.egressPolicy(EgressPolicy.builder().allowDomain("other.test").ports(port(http)).build());
      out = fetch(sb, "http://" + h + "/", "http://other.test:" + port(http) + "/");
      assertTrue(out.get(0).startsWith("403 egress denied (domain)"), out.get(0));
      assertTrue(out.get(1).startsWith("403 egress denied (address)"), "no block: " + out.get(1));

      // paused to disk and resumed (also in another process): the policy and the proxy come back
      sb.egressPolicy(policy());
      sb.pause();
      try (Sandboxes other = open();
          Sandbox again = other.connect(sb.id())) {
        assertEquals(List.of("200 hello /after"), fetch(again, "http://" + h + "/after"));
        assertEquals(policy().domains(), again.egressPolicy().orElseThrow().domains());
        waitUntil(() -> again.egressLog().size() >= 1);
        assertEquals(1, again.egressLog().size(), "" + again.egressLog());
      } // closing the other Sandboxes closes the sandbox it holds
    }
  }

  @Test
  void theOneShotExecutorRunsOnAnEgressSpec() throws Exception {
    try (Sandboxes sandboxes = open();
        dev.agentvm.execution.AgentExecutor ex =
            dev.agentvm.execution.AgentExecutor.builder(sandboxes).sandbox(spec()).build()) {
      dev.agentvm.execution.ExecutionResult r =
          ex.execute(
              dev.agentvm.execution.ExecutionRequest.command(
                      "python3", "-c", FETCH, "http://allowed.test:" + port(http) + "/exec")
                  .build());
      assertEquals("200 hello /exec", r.stdoutText().strip(), r.toString());
    }
  }

  @Test
  void aReadySandboxTakesTheEgressOfTheSpecItIsHandedOutFor() throws Exception {
    try (Sandboxes sandboxes = open()) {
      sandboxes.keepReady(spec(), 1);
      long end = System.nanoTime() + Duration.ofMinutes(3).toNanos();
      while (sandboxes.readyCount(spec()) < 1 && System.nanoTime() < end) {
        Thread.sleep(200);
      }
      assertEquals(1, sandboxes.readyCount(spec()));
      SandboxSpec none = spec().toBuilder().egress(null).build();
      try (Sandbox sb = sandboxes.create(none)) {
        assertTrue(sb.egressPolicy().isEmpty());
        assertFalse(sb.run("env").stdoutText().contains("PROXY"), "no proxy variables");
        List<String> out = fetch(sb, "http://allowed.test:" + port(http) + "/");
        assertTrue(out.get(0).startsWith("ERR"), "no egress at all: " + out);
      }
      sandboxes.keepReady(spec(), 0);
    }
  }

  @Test
  void stalledConnectionsHoldOnlyThemselvesAndTheLimitIsAClearError() throws Exception {
    try (Sandboxes sandboxes = open();
        Sandbox sb = sandboxes.create(spec())) {
      String slow = "http://allowed.test:" + stall.getLocalPort() + "/";
      for (int i = 0; i < 2; i++) {
        sb.start(
            ExecRequest.command("python3", "-c", FETCH, slow),
            dev.agentvm.core.agent.OutputListener.NONE);
      }
      long end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (stalled.size() < 2 && System.nanoTime() < end) {
        Thread.sleep(100);
      }
      assertEquals(2, stalled.size(), "both stalled requests reached their server");
      long t0 = System.nanoTime();
      assertEquals(
          List.of("200 hello /quick"), fetch(sb, "http://allowed.test:" + port(http) + "/quick"));
      long quickMs = (System.nanoTime() - t0) / 1_000_000;
      assertTrue(
          quickMs < 20_000, "a quick request beside two stalled ones took " + quickMs + " ms");
      assertTrue(sb.run("true").exitCode() == 0);

      // a third stalled one fills the limit of 3: the next is refused at once, with the reason
      sb.start(
          ExecRequest.command("python3", "-c", FETCH, slow),
          dev.agentvm.core.agent.OutputListener.NONE);
      end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (stalled.size() < 3 && System.nanoTime() < end) {
        Thread.sleep(100);
      }
      List<String> refused = fetch(sb, "http://allowed.test:" + port(http) + "/");
      assertTrue(refused.get(0).startsWith("503"), "" + refused);
      assertTrue(refused.get(0).contains("3 egress connections"), "" + refused);

      for (Socket s : stalled) {
        s.close(); // the servers give up: their streams end, the slots are free again
      }
      stalled.clear();
      end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      List<String> again = List.of();
      while (System.nanoTime() < end) {
        again = fetch(sb, "http://allowed.test:" + port(http) + "/again");
        if (again.get(0).startsWith("200")) {
          break;
        }
        Thread.sleep(500);
      }
      assertEquals(List.of("200 hello /again"), again);
    }
  }

  /** Polls for up to 10 s: what the proxy's workers record may land after the command's EXIT. */
  private static void waitUntil(java.util.function.BooleanSupplier done)
      throws InterruptedException {
    long end = System.nanoTime() + 10_000_000_000L;
    while (!done.getAsBoolean() && System.nanoTime() < end) {
      Thread.sleep(50);
    }
  }
}
