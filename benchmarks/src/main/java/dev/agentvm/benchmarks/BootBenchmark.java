package dev.agentvm.benchmarks;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.protocol.HelloResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Cold boot of the micro image to agent-ready, split into phases, beside a bare kernel boot (same
 * kernel, busybox-only initramfs whose /init only prints its uptime) measured in the same run,
 * rounds interleaved so that both see the same machine. Prints medians and the ratio.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.BootBenchmark [rounds]
 * </pre>
 */
public final class BootBenchmark {
  private static final Pattern INIT_UPTIME =
      Pattern.compile("agentvm-init: start uptime=([0-9.]+)");

  public static void main(String[] args) throws Exception {
    int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 3;
    MicroImage image = MicroImageBuilder.create().build();
    Map<String, List<Double>> m = new LinkedHashMap<>();
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      for (int r = 1; r <= rounds; r++) {
        bare(conn, "stock bzImage", image.stockKernel(), image.bareInitramfs(), m);
        bare(conn, "PVH vmlinux", image.kernel(), image.bareInitramfs(), m);
        full(conn, image, m);
        System.err.printf("round %d/%d done%n", r, rounds);
      }
    }
    System.out.printf(
        "%nBoot benchmark: %d rounds, medians in ms (TCG on hosts where KVM cannot boot)%n",
        rounds);
    System.out.printf(
        "image %s, %.1f MB (kernel + initramfs)%n", image.directory(), image.sizeBytes() / 1e6);
    for (Map.Entry<String, List<Double>> e : m.entrySet()) {
      System.out.printf(
          "  %-52s %8.0f   (min %.0f, max %.0f)%n",
          e.getKey(),
          median(e.getValue()),
          Collections.min(e.getValue()),
          Collections.max(e.getValue()));
    }
    double ready = median(Stats.samples(m, "agent stack: start -> agent HELLO (host)"));
    double barePvh = median(Stats.samples(m, "bare PVH vmlinux: start -> /init (host)"));
    double bareStock = median(Stats.samples(m, "bare stock bzImage: start -> /init (host)"));
    System.out.printf(
        "ratio agent-ready / bare kernel-to-/init, same kernel (PVH):  %.2f%n", ready / barePvh);
    System.out.printf(
        "ratio agent-ready / bare kernel-to-/init, stock bzImage:      %.2f%n", ready / bareStock);
    Stats.ratio(
        "cold boot to agent ready / bare kernel to /init (same kernel)",
        ready,
        barePvh,
        "ms",
        true,
        1.3);
  }

  private static void bare(
      LibvirtConnection conn, String label, Path kernel, Path initrd, Map<String, List<Double>> m)
      throws Exception {
    VMTemplate t =
        VMTemplate.builder("agentvm-bench-" + UUID.randomUUID().toString().substring(0, 8))
            .boot(new BootSource(kernel, initrd, MicroImage.DEFAULT_CMDLINE))
            .build();
    try (VM vm = conn.define(t)) {
      long t0 = System.nanoTime();
      vm.start();
      long deadline = t0 + Duration.ofMinutes(2).toNanos();
      while (System.nanoTime() < deadline) {
        String console = Files.exists(vm.consoleLog()) ? Files.readString(vm.consoleLog()) : "";
        Matcher mt = INIT_UPTIME.matcher(console);
        if (mt.find()) {
          add(m, "bare " + label + ": start -> /init (host)", (System.nanoTime() - t0) / 1e6);
          add(
              m,
              "bare " + label + ": kernel -> /init (guest uptime)",
              Double.parseDouble(mt.group(1)) * 1000);
          return;
        }
        Thread.sleep(10);
      }
      throw new IllegalStateException("bare boot of " + label + " never reached /init");
    }
  }

  private static void full(LibvirtConnection conn, MicroImage image, Map<String, List<Double>> m) {
    long d0 = System.nanoTime();
    VMTemplate t =
        VMTemplate.builder("agentvm-bench-" + UUID.randomUUID().toString().substring(0, 8))
            .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE))
            .build();
    try (VM vm = conn.define(t)) {
      long t0 = System.nanoTime();
      add(m, "agent stack: define", (t0 - d0) / 1e6);
      vm.start();
      long t1 = System.nanoTime();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      long t2 = System.nanoTime();
      HelloResponse h = agent.hello();
      add(m, "agent stack: QEMU start (libvirt create)", (t1 - t0) / 1e6);
      add(m, "agent stack: kernel -> /init (guest uptime)", (double) h.initUptimeMillis());
      add(
          m,
          "agent stack: /init -> agent JVM main (guest)",
          (double) (h.agentStartUptimeMillis() - h.initUptimeMillis()));
      add(
          m,
          "agent stack: agent JVM main -> HELLO (guest)",
          (double) (h.uptimeMillis() - h.agentStartUptimeMillis()));
      add(m, "agent stack: start -> agent HELLO (host)", (t2 - t0) / 1e6);
    }
  }

  private static void add(Map<String, List<Double>> m, String k, double v) {
    m.computeIfAbsent(k, x -> new ArrayList<>()).add(v);
  }

  private static double median(List<Double> v) {
    List<Double> s = new ArrayList<>(v);
    Collections.sort(s);
    int n = s.size();
    return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
  }
}
