package dev.agentvm.benchmarks;

import com.sun.net.httpserver.HttpServer;
import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressProxy;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;

/**
 * Egress through the host, each path beside its floor in one VM (the python flavour, an echo port
 * for the raw channel): connection set-up through the proxy against the same client fetching from a
 * server inside the guest; download throughput through the proxy against the raw channel stream;
 * EXEC round trips with and without a download saturating the proxy.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.EgressBenchmark
 * </pre>
 */
public final class EgressBenchmark {
  private static final int BIG = 20 * 1024 * 1024;

  /** Times 30 fetches of a small body (after 3 to warm up); prints each in ms. */
  private static final String LATENCY =
      """
      import sys, time, urllib.request
      opener = urllib.request.build_opener() if sys.argv[2] == 'proxy' else \\
          urllib.request.build_opener(urllib.request.ProxyHandler({}))
      for i in range(33):
          t = time.perf_counter()
          with opener.open(sys.argv[1], timeout=60) as r:
              r.read()
          if i >= 3:
              print((time.perf_counter() - t) * 1000)
      """;

  /** Downloads a body {@code argv[2]} times, printing MB/s of each. */
  private static final String DOWNLOAD =
      """
      import sys, time, urllib.request
      for i in range(int(sys.argv[2])):
          t = time.perf_counter()
          n = 0
          with urllib.request.urlopen(sys.argv[1], timeout=300) as r:
              while True:
                  b = r.read(1 << 16)
                  if not b:
                      break
                  n += len(b)
          print(n / 1e6 / (time.perf_counter() - t))
      """;

  public static void main(String[] args) throws Exception {
    MicroImage image = MicroImageBuilder.create().packages(MicroImage.PYTHON_GIT).build();
    byte[] big = new byte[BIG];
    new Random(5).nextBytes(big);
    HttpServer http =
        HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 16);
    http.createContext(
        "/",
        x -> {
          byte[] body = x.getRequestURI().getPath().equals("/big") ? big : new byte[] {'o', 'k'};
          x.sendResponseHeaders(200, body.length);
          try (OutputStream o = x.getResponseBody()) {
            o.write(body);
          }
        });
    http.start();
    int port = http.getAddress().getPort();
    String name = "agentvm-bench-egress-" + UUID.randomUUID().toString().substring(0, 8);
    VMTemplate.Builder b =
        VMTemplate.builder(name)
            .resources(new ResourceProfile(1, 512))
            .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE));
    image
        .packageDiskIfAny()
        .ifPresent(
            d ->
                b.disk(
                    new DiskAttachment(
                        d,
                        DiskAttachment.Format.RAW,
                        "vda",
                        true,
                        MicroImage.PACKAGE_DISK_MOUNT_POINT)));
    VMTemplate t0 = b.build();
    Path echoSock = t0.runDir().resolve("echo.sock");
    VMTemplate t = ProtocolBenchmark.withEchoPort(t0, echoSock);
    EgressPolicy policy =
        EgressPolicy.builder()
            .allowDomain("bench.test")
            .ports(port)
            .allowBlock("127.0.0.1/32")
            .build();
    Map<String, List<Double>> m = new HashMap<>();
    try (LibvirtConnection conn = LibvirtConnection.open();
        VM vm = conn.define(t);
        EgressProxy proxy =
            EgressProxy.builder(policy)
                .name(name)
                .resolver(n -> List.of(InetAddress.getByAddress(n, new byte[] {127, 0, 0, 1})))
                .build()) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      proxy.attach(agent, Duration.ofSeconds(30));
      Map<String, String> env = proxy.environment();
      String url = "http://bench.test:" + port;

      // floors: the raw channel stream, and the same client against a server in the guest
      double raw;
      try (SocketChannel echo = SocketChannel.open(StandardProtocolFamily.UNIX)) {
        echo.connect(UnixDomainSocketAddress.of(echoSock));
        raw = ProtocolBenchmark.streamThroughEcho(echo, big);
      }
      agent.spawn(
          ExecRequest.command("python3", "-m", "http.server", "8000", "--bind", "127.0.0.1")
              .withCwd("/tmp"),
          OutputListener.NONE,
          Duration.ofSeconds(30));
      Thread.sleep(3000);
      exec(agent, "sh", "-c", "echo ok > /tmp/small"); // a 3-byte body, like the host's
      exec(agent, "sh", "-c", "head -c " + BIG + " /dev/zero > /tmp/big");
      Path back = java.nio.file.Files.createTempFile("agentvm-bench", ".bin");
      long g0 = System.nanoTime();
      agent.getFile("/tmp/big", back, Duration.ofMinutes(5));
      double get = BIG / 1e6 / ((System.nanoTime() - g0) / 1e9);
      java.nio.file.Files.write(back, big);
      long p0 = System.nanoTime();
      agent.putFile(back, "/tmp/put.bin", 0644, Duration.ofMinutes(5));
      double put = BIG / 1e6 / ((System.nanoTime() - p0) / 1e9);
      java.nio.file.Files.delete(back);
      m.put(
          "local",
          lines(agent, env, "python3", "-c", LATENCY, "http://127.0.0.1:8000/small", "local"));
      m.put("proxy", lines(agent, env, "python3", "-c", LATENCY, url + "/small", "proxy"));
      List<Double> mbs = lines(agent, env, "python3", "-c", DOWNLOAD, url + "/big", "3");

      ExecRequest trueCmd = ExecRequest.command("true").withTimeout(Duration.ofSeconds(60));
      for (int i = 0; i < 5; i++) {
        agent.exec(trueCmd);
      }
      List<Double> idle = new ArrayList<>();
      for (int i = 0; i < 30; i++) {
        long a = System.nanoTime();
        agent.exec(trueCmd);
        idle.add((System.nanoTime() - a) / 1e6);
      }
      // the same download from the guest's own server loads the guest alike, without the proxy
      List<Double> local = underLoad(agent, trueCmd, env, "http://127.0.0.1:8000/big");
      List<Double> busy = underLoad(agent, trueCmd, env, url + "/big");
      long downloaded = proxy.log().stream().mapToLong(r -> r.bytesIn()).sum();

      System.out.printf("%nEgress benchmark, one VM (%s), ms unless said%n", vm.virtType());
      print("fetch, guest server on its loopback (floor)", m.get("local"));
      print("fetch through the egress proxy", m.get("proxy"));
      System.out.printf(
          "  ratio proxy / floor (p50)                        %7.2f%n",
          ProtocolBenchmark.pct(m.get("proxy"), 50) / ProtocolBenchmark.pct(m.get("local"), 50));
      System.out.printf("  raw channel stream, 20 MB (floor)                %7.1f MB/s%n", raw);
      double best = mbs.stream().mapToDouble(Double::doubleValue).max().orElse(0);
      System.out.printf(
          "  download 20 MB through the proxy (best of 3)     %7.1f MB/s = %.0f %% of raw%n",
          best, 100 * best / raw);
      System.out.printf(
          "  GET_FILE 20 MB, the agent's own bulk path        %7.1f MB/s = %.0f %% of raw%n",
          get, 100 * get / raw);
      System.out.printf(
          "  PUT_FILE 20 MB, host to guest like a download    %7.1f MB/s = %.0f %% of raw%n",
          put, 100 * put / raw);
      print("EXEC true, guest idle", idle);
      print("EXEC true, the guest downloading from itself", local);
      print("EXEC true, the guest downloading through the proxy", busy);
      System.out.printf(
          "  ratio proxy-loaded / self-loaded (p50)           %7.2f   (%d MB through the proxy)%n",
          ProtocolBenchmark.pct(busy, 50) / ProtocolBenchmark.pct(local, 50), downloaded >> 20);
    } finally {
      http.stop(0);
    }
  }

  /** EXEC round trips while a download loop runs in the guest (stopped afterwards). */
  private static List<Double> underLoad(
      AgentClient agent, ExecRequest cmd, Map<String, String> env, String url) throws Exception {
    AgentClient.Background bg =
        agent.spawn(
            ExecRequest.command("python3", "-c", DOWNLOAD, url, "1000").withEnv(env),
            OutputListener.NONE,
            Duration.ofSeconds(30));
    Thread.sleep(5000);
    List<Double> v = new ArrayList<>();
    for (int i = 0; i < 30; i++) {
      long a = System.nanoTime();
      agent.exec(cmd);
      v.add((System.nanoTime() - a) / 1e6);
    }
    agent.killBackground(bg.handle(), Duration.ofSeconds(30));
    return v;
  }

  private static void exec(AgentClient agent, String... argv) throws Exception {
    ExecResult r = agent.exec(ExecRequest.command(argv).withTimeout(Duration.ofMinutes(2)));
    if (r.exitCode() != 0) {
      throw new IllegalStateException(String.join(" ", argv) + ": " + r.stderrText());
    }
  }

  private static List<Double> lines(AgentClient agent, Map<String, String> env, String... argv)
      throws Exception {
    ExecResult r =
        agent.exec(ExecRequest.command(argv).withEnv(env).withTimeout(Duration.ofMinutes(5)));
    if (r.exitCode() != 0) {
      throw new IllegalStateException(r.stdoutText() + r.stderrText());
    }
    return r.stdoutText().lines().map(Double::parseDouble).toList();
  }

  private static void print(String what, List<Double> v) {
    System.out.printf(
        "  %-48s p50 %7.2f  p99 %7.2f%n",
        what, ProtocolBenchmark.pct(v, 50), ProtocolBenchmark.pct(v, 99));
  }
}
