package dev.agentvm.network;

import dev.agentvm.core.LibvirtConnection;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Run in a child JVM by IpAllocatorIT and RemoteNetworkIT: allocates N addresses on 16 threads at
 * once and prints each as "ip mac". Arguments: network, subnet, N, bookkeeping directory ("-" for
 * the host's default), and optionally the libvirt URI.
 */
public final class AllocateMany {
  public static void main(String[] args) throws Exception {
    NetworkSpec net = NetworkSpec.isolated(args[0], args[1]);
    int n = Integer.parseInt(args[2]);
    try (LibvirtConnection conn =
        args.length > 4 ? LibvirtConnection.open(args[4]) : LibvirtConnection.open()) {
      // "-": the host's own bookkeeping, where IpAllocator keeps it by default
      IpAllocator ips =
          args[3].equals("-")
              ? new IpAllocator(conn, net)
              : new IpAllocator(conn, net, Path.of(args[3]));
      List<String> out = allocate(ips, n, "child");
      out.forEach(System.out::println);
      System.out.println("DONE");
    }
  }

  static List<String> allocate(IpAllocator ips, int n, String who) throws Exception {
    ExecutorService ex = Executors.newFixedThreadPool(16);
    List<Future<IpAllocator.Reservation>> fs = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int k = i;
      fs.add(ex.submit(() -> ips.allocate("agentvm-test-" + who + "-" + k, MacAddresses.random())));
    }
    List<String> out = new ArrayList<>();
    for (Future<IpAllocator.Reservation> f : fs) {
      IpAllocator.Reservation r = f.get();
      out.add(r.ip() + " " + r.mac());
    }
    ex.shutdown();
    return out;
  }
}
