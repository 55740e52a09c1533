package dev.agentvm.benchmarks;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import org.w3c.dom.Element;

/**
 * The protocol's cost over the bare channel, in one VM: a second virtio-serial port whose guest end
 * is a {@code cat} loop echoes raw bytes, and is measured beside the agent's PING, EXEC of {@code
 * true}, and PUT_FILE of the same bytes.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.ProtocolBenchmark
 * </pre>
 */
public final class ProtocolBenchmark {
  public static void main(String[] args) throws Exception {
    MicroImage image = MicroImageBuilder.create().build();
    String name = "agentvm-bench-" + UUID.randomUUID().toString().substring(0, 8);
    // --java-opts=-Xa,-Xb: extra options for the guest agent's JVM (a lever under measurement)
    StringBuilder cmdline = new StringBuilder(MicroImage.DEFAULT_CMDLINE);
    for (String a : args) {
      if (a.startsWith("--java-opts=")) {
        cmdline.append(" agentvm.java_opts=").append(a.substring("--java-opts=".length()));
      }
    }
    VMTemplate t0 =
        VMTemplate.builder(name)
            .resources(new ResourceProfile(1, 512))
            .boot(new BootSource(image.kernel(), image.initramfs(), cmdline.toString()))
            .build();
    Path echoSock = t0.runDir().resolve("echo.sock");
    VMTemplate t = withEchoPort(t0, echoSock);
    Path dir = Files.createTempDirectory("agentvm-bench");
    try (LibvirtConnection conn = LibvirtConnection.open();
        VM vm = conn.define(t)) {
      long boot0 = System.nanoTime();
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      double bootMs = (System.nanoTime() - boot0) / 1e6;
      try (SocketChannel echo = SocketChannel.open(StandardProtocolFamily.UNIX)) {
        echo.connect(UnixDomainSocketAddress.of(echoSock));
        byte[] ping = new byte[24]; // the size of a PING frame: header 20 + CRC 4
        for (int i = 0; i < 20; i++) { // warm up both paths
          roundTrip(echo, ping);
          agent.ping(Duration.ofSeconds(10));
        }
        List<Double> raw = new ArrayList<>();
        List<Double> pings = new ArrayList<>();
        List<Double> execs = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
          long a = System.nanoTime();
          roundTrip(echo, ping);
          raw.add((System.nanoTime() - a) / 1e6);
          pings.add(agent.ping(Duration.ofSeconds(10)).toNanos() / 1e6);
        }
        ExecRequest trueCmd = ExecRequest.command("true").withTimeout(Duration.ofSeconds(30));
        for (int i = 0; i < 5; i++) {
          agent.exec(trueCmd);
        }
        for (int i = 0; i < 40; i++) {
          long a = System.nanoTime();
          agent.exec(trueCmd);
          execs.add((System.nanoTime() - a) / 1e6);
        }
        for (int i = 0; i < 200; i++) { // what a long session's commands run on
          agent.exec(trueCmd);
        }
        List<Double> warmExecs = new ArrayList<>();
        List<Double> inGuest = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
          long a = System.nanoTime();
          var r = agent.exec(trueCmd);
          warmExecs.add((System.nanoTime() - a) / 1e6);
          inGuest.add((double) r.duration().toMillis());
        }
        List<Double> setsidForks = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
          setsidForks.add(guestLoopMs(agent, "setsid /bin/true"));
        }
        List<Double> forks = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
          forks.add(guestForkExecMs(agent));
        }
        double floor = pct(raw, 50) + pct(forks, 50);
        int size = 20 * 1024 * 1024;
        byte[] data = new byte[size];
        new Random(3).nextBytes(data);
        Path file = dir.resolve("data.bin");
        Files.write(file, data);
        double rawMBs = streamThroughEcho(echo, data);
        long p0 = System.nanoTime();
        agent.putFile(file, "/tmp/bench.bin", 0644, Duration.ofMinutes(5));
        double putMBs = size / 1e6 / ((System.nanoTime() - p0) / 1e9);
        long g0 = System.nanoTime();
        agent.getFile("/tmp/bench.bin", dir.resolve("back.bin"), Duration.ofMinutes(5));
        double getMBs = size / 1e6 / ((System.nanoTime() - g0) / 1e9);

        System.out.printf(
            "%nProtocol benchmark, one VM (%s), medians and p99 in ms%n", vm.virtType());
        System.out.printf(
            "  raw echo round trip, 24 B     p50 %7.2f  p99 %7.2f%n", pct(raw, 50), pct(raw, 99));
        System.out.printf(
            "  agent PING round trip         p50 %7.2f  p99 %7.2f%n",
            pct(pings, 50), pct(pings, 99));
        System.out.printf(
            "  agent EXEC of true            p50 %7.2f  p99 %7.2f%n",
            pct(execs, 50), pct(execs, 99));
        System.out.printf(
            "  agent EXEC of true, after 245 p50 %7.2f  p99 %7.2f%n",
            pct(warmExecs, 50), pct(warmExecs, 99));
        System.out.printf(
            "  of which the agent's start-to-exit (whole ms)     p50 %7.2f%n", pct(inGuest, 50));
        System.out.printf(
            "  guest's own `setsid /bin/true` (the agent's launch), loop of 200 %7.2f%n",
            pct(setsidForks, 50));
        System.out.printf(
            "  guest's own fork+exec+wait of /bin/true (busybox loop of 200, median of 3) %7.2f%n",
            pct(forks, 50));
        System.out.printf("  EXEC floor = raw round trip p50 + guest fork+exec  %7.2f%n", floor);
        System.out.printf("  ratio PING / raw (p50)        %7.2f%n", pct(pings, 50) / pct(raw, 50));
        System.out.printf(
            "  ratio EXEC / floor            p50 %5.2f  p99 %5.2f   (goal: at most 1.5 / 2)%n",
            pct(execs, 50) / floor, pct(execs, 99) / floor);
        System.out.printf(
            "  ratio EXEC after 245 / floor  p50 %5.2f  p99 %5.2f   (goal: at most 1.5 / 2)%n",
            pct(warmExecs, 50) / floor, pct(warmExecs, 99) / floor);
        System.out.printf("  start -> agent HELLO          %7.0f ms%n", bootMs);
        System.out.printf("  raw echo stream, 20 MB        %7.1f MB/s%n", rawMBs);
        System.out.printf(
            "  PUT_FILE 20 MB                %7.1f MB/s  = %.0f %% of raw (goal: at least 70 %%)%n",
            putMBs, 100 * putMBs / rawMBs);
        System.out.printf(
            "  GET_FILE 20 MB                %7.1f MB/s  = %.0f %% of raw%n",
            getMBs, 100 * getMBs / rawMBs);
        Stats.ratio(
            "EXEC of true p50, after 245 / floor", pct(warmExecs, 50), floor, "ms", true, 1.5);
        Stats.ratio(
            "EXEC of true p99, after 245 / floor", pct(warmExecs, 99), floor, "ms", true, 2);
        Stats.ratio("PUT_FILE 20 MB / raw channel stream", putMBs, rawMBs, "MB/s", false, 0.7);
        Stats.ratio("GET_FILE 20 MB / raw channel stream", getMBs, rawMBs, "MB/s", false, 0.7);
      }
    } finally {
      try (var s = Files.list(dir)) {
        for (Path p : s.toList()) {
          Files.delete(p);
        }
      }
      Files.delete(dir);
    }
  }

  /**
   * Milliseconds the guest itself takes to fork, exec and reap {@code /bin/true} (busybox, by path
   * so that the shell cannot run the applet in-process): a loop of 200 timed by the guest's clock.
   */
  static double guestForkExecMs(AgentClient agent) throws Exception {
    return guestLoopMs(agent, "/bin/true");
  }

  /** Milliseconds per run of {@code command} in a guest shell loop of 200. */
  static double guestLoopMs(AgentClient agent, String command) throws Exception {
    String script =
        "read a _ < /proc/uptime; i=0; while [ $i -lt 200 ]; do "
            + command
            + "; i=$((i+1)); done;"
            + " read b _ < /proc/uptime; echo $a $b";
    var r = agent.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofMinutes(2)));
    String[] ab = r.stdoutText().trim().split(" ", -1);
    return (Double.parseDouble(ab[1]) - Double.parseDouble(ab[0])) * 1000 / 200;
  }

  /**
   * {@code t} with a second virtio-serial port whose guest end the micro image's init runs a {@code
   * cat} loop on: raw bytes echoed at the channel's own speed, through {@code sock}.
   */
  static VMTemplate withEchoPort(VMTemplate t, Path sock) {
    return t.newBuilder()
        .customizer(
            d -> {
              Element ch = d.createElement("channel");
              ch.setAttribute("type", "unix");
              Element src = d.createElement("source");
              src.setAttribute("mode", "bind");
              src.setAttribute("path", sock.toString());
              Element target = d.createElement("target");
              target.setAttribute("type", "virtio");
              target.setAttribute("name", "dev.agentvm.echo.0");
              ch.appendChild(src);
              ch.appendChild(target);
              d.getElementsByTagName("devices").item(0).appendChild(ch);
            })
        .build();
  }

  static void roundTrip(SocketChannel ch, byte[] msg) throws Exception {
    ByteBuffer out = ByteBuffer.wrap(msg);
    while (out.hasRemaining()) {
      ch.write(out);
    }
    ByteBuffer in = ByteBuffer.allocate(msg.length);
    while (in.hasRemaining()) {
      if (ch.read(in) < 0) {
        throw new IllegalStateException("echo closed");
      }
    }
  }

  /** Bytes through the echo port: written by one thread, read back by this one. */
  static double streamThroughEcho(SocketChannel ch, byte[] data) throws Exception {
    long t0 = System.nanoTime();
    Thread writer =
        new Thread(
            () -> {
              try {
                ByteBuffer b = ByteBuffer.wrap(data);
                while (b.hasRemaining()) {
                  ch.write(b);
                }
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            });
    writer.start();
    ByteBuffer in = ByteBuffer.allocate(1 << 16);
    long got = 0;
    while (got < data.length) {
      in.clear();
      int n = ch.read(in);
      if (n < 0) {
        throw new IllegalStateException("echo closed after " + got + " bytes");
      }
      got += n;
    }
    writer.join();
    return data.length / 1e6 / ((System.nanoTime() - t0) / 1e9);
  }

  static double pct(List<Double> v, int p) {
    List<Double> s = new ArrayList<>(v);
    Collections.sort(s);
    return s.get(Math.min(s.size() - 1, (int) Math.ceil(p / 100.0 * s.size()) - 1));
  }
}
