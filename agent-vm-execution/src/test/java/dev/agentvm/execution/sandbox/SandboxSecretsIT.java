package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.network.egress.EgressCa;
import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressRecord;
import dev.agentvm.network.egress.EgressResolver;
import dev.agentvm.network.egress.EgressSecret;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A secret the guest uses and never holds, from inside a real guest: its variable holds a
 * placeholder; HTTPS to the bound domain is terminated on the host (the guest trusts the egress CA
 * through the usual variables) and the request carries the value; an unbound server gets the
 * placeholder; a request inside the bound tunnel for another site is refused; afterwards the value
 * is found nowhere in the guest, its console, its records, the egress log or the host's log output.
 * The "public" servers run on the host's loopback with certificates of a test CA that the host's
 * upstream trust (and not the guest) holds.
 */
class SandboxSecretsIT extends RealLibvirtTest {
  private static final String GET =
      """
      import os, ssl, sys, urllib.request
      key = os.environ['API_KEY']
      print('ENV', key)
      for url in sys.argv[1:]:
          ctx = ssl.create_default_context() if 'bound.test' in url and 'unbound' not in url \\
              and os.environ.get('VERIFY', '1') == '1' else ssl._create_unverified_context()
          req = urllib.request.Request(url, headers={'X-Api-Key': key, 'Authorization': 'Bearer ' + key})
          try:
              with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
                  print(r.status, r.read().decode().strip())
          except urllib.error.HTTPError as e:
              print(e.code, e.read().decode().strip())
          except Exception as e:
              print('ERR', e)
      """;

  /** A request inside the bound tunnel whose Host names another site. */
  private static final String MISDIRECTED =
      """
      import http.client, ssl, sys
      c = http.client.HTTPSConnection('127.0.0.1', 3128, context=ssl.create_default_context(), timeout=60)
      c.set_tunnel('bound.test', int(sys.argv[1]))
      try:
          c.request('GET', '/misdirected', headers={'Host': 'unbound.test:' + sys.argv[1]})
          r = c.getresponse()
          print(r.status, r.read().decode().strip())
      except Exception as e:
          print('ERR', e)
      """;

  /** Every file and every process's environment and command line, searched for a value. */
  private static final String SEARCH =
      """
      import os, sys
      needle = sys.stdin.buffer.read()[::-1]
      hits = []
      for root, dirs, files in os.walk('/'):
          if root == '/':
              dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev')]
          for f in files:
              p = os.path.join(root, f)
              try:
                  if os.path.islink(p) or not os.path.isfile(p):
                      continue
                  with open(p, 'rb') as fh:
                      if needle in fh.read():
                          hits.append(p)
              except Exception:
                  pass
      me = str(os.getpid())
      for pid in os.listdir('/proc'):
          if pid.isdigit() and pid != me:
              for k in ('environ', 'cmdline'):
                  try:
                      with open('/proc/%s/%s' % (pid, k), 'rb') as fh:
                          if needle in fh.read():
                              hits.append('/proc/%s/%s' % (pid, k))
                  except Exception:
                      pass
      print('HITS', hits)
      """;

  private static final String VALUE =
      "sk-test-" + HexFormat.of().formatHex(new SecureRandom().generateSeed(12));

  private static MicroImage image;
  private static EgressCa publicCa;
  private static HttpsServer bound;
  private static HttpsServer unbound;
  private static final List<String> boundSaw = new CopyOnWriteArrayList<>();
  private static final List<String> unboundSaw = new CopyOnWriteArrayList<>();

  @BeforeAll
  static void servers() throws Exception {
    image = MicroImageBuilder.create().packages(MicroImage.PYTHON).build();
    publicCa = EgressCa.create();
    bound = server("bound.test", boundSaw);
    unbound = server("unbound.test", unboundSaw);
  }

  private static HttpsServer server(String name, List<String> saw) throws IOException {
    HttpsServer s =
        HttpsServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
    s.setHttpsConfigurator(new HttpsConfigurator(publicCa.serverContext(name)));
    s.createContext(
        "/",
        x -> {
          saw.add(
              x.getRequestURI()
                  + " auth="
                  + x.getRequestHeaders().getFirst("Authorization")
                  + " key="
                  + x.getRequestHeaders().getFirst("X-Api-Key"));
          byte[] body = ("hello from " + name).getBytes(StandardCharsets.UTF_8);
          x.sendResponseHeaders(200, body.length);
          x.getResponseBody().write(body);
          x.close();
        });
    s.start();
    return s;
  }

  @AfterAll
  static void stop() {
    bound.stop(0);
    unbound.stop(0);
  }

  private static final EgressResolver NAMES =
      name -> {
        if (name.equals("bound.test") || name.equals("unbound.test")) {
          return List.of(InetAddress.getByAddress(name, new byte[] {127, 0, 0, 1}));
        }
        throw new UnknownHostException(name);
      };

  /** What the host trusts for the servers it connects to: the test's "public" CA only. */
  private static SSLContext hostTrust() throws Exception {
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    ks.setCertificateEntry("public", publicCa.certificate());
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(ks);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return ctx;
  }

  private static EgressSecret secret() {
    return EgressSecret.of("API_KEY", VALUE)
        .boundTo("bound.test")
        .header("Authorization", "Bearer {value}")
        .inHeader("X-Api-Key");
  }

  private static EgressPolicy policy(EgressSecret secret) {
    return EgressPolicy.builder()
        .allowDomain("bound.test")
        .allowDomain("unbound.test")
        .ports(bound.getAddress().getPort(), unbound.getAddress().getPort())
        .allowBlock("127.0.0.1/32")
        .secret(secret)
        .build();
  }

  private static String boundUrl(String path) {
    return "https://bound.test:" + bound.getAddress().getPort() + path;
  }

  private static String unboundUrl(String path) {
    return "https://unbound.test:" + unbound.getAddress().getPort() + path;
  }

  private static List<String> get(Sandbox sb, Map<String, String> env, String... urls)
      throws IOException {
    List<String> argv = new ArrayList<>(List.of("python3", "-c", GET));
    argv.addAll(List.of(urls));
    ExecResult r = sb.exec(ExecRequest.command(argv.toArray(String[]::new)).withEnv(env));
    assertEquals(0, r.exitCode(), r.stderrText());
    return r.stdoutText().lines().toList();
  }

  @Test
  void theBoundServerGetsTheValueAndTheGuestNeverHoldsIt() throws Exception {
    String placeholder = secret().placeholder();
    List<EgressRecord> audit = new CopyOnWriteArrayList<>();
    ByteArrayOutputStream logged = new ByteArrayOutputStream();
    PrintStream err = System.err;
    System.setErr(new PrintStream(new Tee(err, logged), true, StandardCharsets.UTF_8));
    String id;
    try {
      try (Sandboxes sandboxes =
          Sandboxes.open(conn)
              .egressResolver(NAMES)
              .egressUpstreamTls(hostTrust())
              .egressListener(audit::add)) {
        Sandbox sb =
            sandboxes.create(
                SandboxSpec.defaults()
                    .withImage(image)
                    .withNamePrefix(TestVms.PREFIX + "secrets-")
                    .withCommandTimeout(Duration.ofMinutes(2))
                    .withEgress(policy(secret())));
        id = sb.id();
        List<String> out = get(sb, Map.of(), boundUrl("/b"), unboundUrl("/u"));
        assertEquals("ENV " + placeholder, out.get(0), "the guest's variable: the placeholder");
        assertEquals("200 hello from bound.test", out.get(1), "verified through the egress CA");
        assertEquals("200 hello from unbound.test", out.get(2));
        assertEquals(List.of("/b auth=Bearer " + VALUE + " key=" + VALUE), boundSaw);
        assertEquals(List.of("/u auth=Bearer " + placeholder + " key=" + placeholder), unboundSaw);
        String env = sb.run("env").stdoutText();
        assertTrue(env.contains("SSL_CERT_FILE=/etc/agentvm/egress-ca-bundle.pem"), env);
        assertTrue(env.contains("NODE_EXTRA_CA_CERTS=/etc/agentvm/egress-ca.pem"), env);

        // inside the bound tunnel, a request for another site gets no value and no server
        ExecResult mis =
            sb.exec(
                ExecRequest.command(
                    "python3", "-c", MISDIRECTED, Integer.toString(bound.getAddress().getPort())));
        assertTrue(mis.stdoutText().startsWith("421 "), mis.stdoutText() + mis.stderrText());
        assertEquals(1, boundSaw.size(), "the misdirected request reached no server");

        // paused here, resumed by another process (a new Sandboxes): the value is not on disk
        sb.pause();
      }
      boundSaw.clear();
      try (Sandboxes again =
          Sandboxes.open(conn)
              .egressResolver(NAMES)
              .egressUpstreamTls(hostTrust())
              .egressListener(audit::add)) {
        Sandbox sb = again.connect(id);
        sb.resume();
        List<String> out = get(sb, Map.of("VERIFY", "0"), boundUrl("/no-value"));
        assertEquals("200 hello from bound.test", out.get(1));
        assertEquals(
            List.of("/no-value auth=Bearer " + placeholder + " key=" + placeholder),
            boundSaw,
            "without the value the bound domain is tunnelled as it is");
        sb.egressPolicy(policy(secret())); // given again
        out = get(sb, Map.of(), boundUrl("/again"));
        assertEquals("200 hello from bound.test", out.get(1));
        assertEquals("/again auth=Bearer " + VALUE + " key=" + VALUE, boundSaw.get(1));

        // the value is nowhere in the guest: files (the workspace too), environments, commands
        String reversed = new StringBuilder(VALUE).reverse().toString();
        ExecResult search =
            sb.exec(
                ExecRequest.command("python3", "-c", SEARCH)
                    .withStdin(reversed.getBytes(StandardCharsets.UTF_8)));
        assertEquals("HITS []", search.stdoutText().strip(), search.stderrText());
        // nor on the host's side of the sandbox: its records, disk overlay, console log
        assertNowhere(again.dirOf(id));
        assertNowhere(AgentVmPaths.runDir(id));
        assertFalse(sb.egressLog().toString().contains(VALUE));
        sb.close();
      }
    } finally {
      System.setErr(err);
    }
    assertFalse(audit.isEmpty());
    assertTrue(audit.stream().noneMatch(r -> r.toString().contains(VALUE)), "the audit");
    assertTrue(
        audit.stream().anyMatch(r -> r.rule().equals("secret")), "the misdirected one: " + audit);
    String log = logged.toString(StandardCharsets.UTF_8);
    assertTrue(log.contains("TLS terminated on the host for [API_KEY]"), "the log was captured");
    assertFalse(log.contains(VALUE), "the host's log output");
  }

  private static void assertNowhere(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return;
    }
    byte[] needle = VALUE.getBytes(StandardCharsets.UTF_8);
    List<Path> all;
    try (Stream<Path> files = Files.list(dir)) {
      all = new java.util.ArrayList<>(files.toList());
    }
    // a resumed image may still be deleted meanwhile (in the background): one gone is not read
    for (int i = 0; i < all.size(); i++) {
      Path f = all.get(i);
      if (Files.isDirectory(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
        try (Stream<Path> inner = Files.list(f)) {
          all.addAll(inner.toList());
        }
      } else if (Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
        byte[] b;
        try {
          b = Files.readAllBytes(f);
        } catch (java.nio.file.NoSuchFileException gone) {
          continue;
        }
        assertFalse(indexOf(b, needle) >= 0, "the value is in " + f);
      }
    }
  }

  private static int indexOf(byte[] hay, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= hay.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }

  /** Writes to two streams. */
  private static final class Tee extends OutputStream {
    private final OutputStream a;
    private final OutputStream b;

    Tee(OutputStream a, OutputStream b) {
      this.a = a;
      this.b = b;
    }

    @Override
    public synchronized void write(int x) throws IOException {
      a.write(x);
      b.write(x);
    }

    @Override
    public synchronized void write(byte[] buf, int off, int len) throws IOException {
      a.write(buf, off, len);
      b.write(buf, off, len);
    }
  }
}
