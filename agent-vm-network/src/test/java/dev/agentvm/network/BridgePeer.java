package dev.agentvm.network;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * The other end of a guest's NIC for tests: a network namespace of its own joined to a layer-2
 * libvirt bridge by a veth pair, serving DHCP (busybox {@code udhcpd}) and a page ({@code ok.txt},
 * "reached") on ports 80 and 8080 (busybox {@code httpd}) at {@code <prefix>.1}. The bridge may be
 * in another namespace (a libvirt host of its own). Closing it stops its daemons and removes the
 * namespace, and the veth pair with it.
 */
final class BridgePeer implements AutoCloseable {
  private final String namespace;
  private final String removeOuter;
  private final List<Process> daemons = new ArrayList<>();

  private BridgePeer(String namespace, String removeOuter) {
    this.namespace = namespace;
    this.removeOuter = removeOuter;
  }

  /**
   * Starts a peer named {@code "agvt" + id} on {@code bridge}, which lives in {@code
   * bridgeNamespace} (null: this machine's), at {@code prefix + ".1"}/24 (e.g. "10.213.77").
   */
  static BridgePeer start(
      String bridge, @Nullable String bridgeNamespace, String prefix, String id, Path tmp)
      throws Exception {
    String ns = "agvt" + id;
    String outer = ns + "a";
    String inner = ns + "b";
    String there = bridgeNamespace == null ? "" : "ip netns exec " + bridgeNamespace + " ";
    String in = "ip netns exec " + ns + " ";
    sh("ip netns add " + ns);
    // gone with the namespace once its peer end is in there; not if a start failed before that
    BridgePeer peer = new BridgePeer(ns, there + "ip link del " + outer);
    try {
      sh(there + "ip link add " + outer + " type veth peer name " + inner);
      sh(there + "ip link set " + outer + " master " + bridge);
      sh(there + "ip link set " + outer + " up");
      sh(there + "ip link set " + inner + " netns " + ns);
      sh(in + "ip addr add " + prefix + ".1/24 dev " + inner);
      sh(in + "ip link set " + inner + " up");
      sh(in + "ip link set lo up");
      Path www = Files.createDirectories(tmp.resolve("www"));
      Files.writeString(www.resolve("ok.txt"), "reached\n");
      Path conf = tmp.resolve("udhcpd.conf");
      Files.writeString(
          conf,
          "start "
              + prefix
              + ".100\nend "
              + prefix
              + ".150\ninterface "
              + inner
              + "\nlease_file "
              + tmp.resolve("leases")
              + "\noption subnet 255.255.255.0\n");
      Files.createFile(tmp.resolve("leases"));
      peer.daemons.add(
          new ProcessBuilder("ip", "netns", "exec", ns, "busybox", "udhcpd", "-f", conf.toString())
              .redirectErrorStream(true)
              .redirectOutput(tmp.resolve("udhcpd.log").toFile())
              .start());
      for (int port : new int[] {80, 8080}) {
        peer.daemons.add(
            new ProcessBuilder(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "busybox",
                    "httpd",
                    "-f",
                    "-p",
                    prefix + ".1:" + port,
                    "-h",
                    www.toString())
                .start());
      }
      return peer;
    } catch (Exception | Error e) {
      peer.close();
      throw e;
    }
  }

  /**
   * A guest script: waits for eth0's DHCP address and prints it, then for each of ports 80 and 8080
   * of the peer a line "port:open" or "port:blocked" (both probed at once, in either order: a
   * blocked port waits out nc's timeout).
   */
  static String probe(String prefix) {
    return "for i in $(seq 1 60); do ip -4 addr show eth0 | grep -q 'inet ' && break; sleep 0.5;"
        + " done; ip -4 -o addr show eth0 | awk '{print $4}';"
        // busybox nc, not wget: the static busybox's wget crashes resolving names without NSS
        + " for p in 80 8080; do if printf 'GET /ok.txt HTTP/1.0\\r\\n\\r\\n'"
        + " | nc -w 4 "
        + prefix
        + ".1 $p 2>/dev/null | grep -q reached;"
        + " then echo $p:open; else echo $p:blocked; fi & done; wait";
  }

  /** Whether the probe's output has this line (e.g. "80:open"; "8080:open" is another line). */
  static boolean said(String probeOutput, String line) {
    return probeOutput.lines().anyMatch(line::equals);
  }

  @Override
  public void close() throws java.io.IOException {
    try {
      for (Process p : daemons) {
        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
      Process p =
          new ProcessBuilder("ip", "netns", "del", namespace).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new java.io.IOException("ip netns del " + namespace + " failed: " + out);
      }
      Process q = new ProcessBuilder("sh", "-c", removeOuter).redirectErrorStream(true).start();
      q.getInputStream().readAllBytes(); // "cannot find device" when it went with the namespace
      q.waitFor(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("removing " + namespace);
    }
  }

  private static void sh(String cmd) throws Exception {
    Process p = new ProcessBuilder("sh", "-c", cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    int rc = p.waitFor();
    if (rc != 0) {
      throw new AssertionError(cmd + " failed (" + rc + "): " + out);
    }
  }
}
