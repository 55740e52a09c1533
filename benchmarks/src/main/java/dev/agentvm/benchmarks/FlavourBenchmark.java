package dev.agentvm.benchmarks;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.execution.GuestImages;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Image flavours side by side: size on disk, cold boot to agent-ready, and the first run of the
 * flavour's tools ({@code python3 -c pass}, {@code git --version}) in a fresh VM. Rounds are
 * interleaved across flavours, so a change in host load hits all of them alike.
 *
 * <pre>java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar
 *     dev.agentvm.benchmarks.FlavourBenchmark 5</pre>
 */
public final class FlavourBenchmark {
  public static void main(String[] args) throws Exception {
    int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 5;
    Map<String, MicroImage> flavours = new LinkedHashMap<>();
    for (List<String> pkgs : List.of(List.<String>of(), MicroImage.PYTHON, MicroImage.PYTHON_GIT)) {
      long t0 = System.nanoTime();
      MicroImage img = MicroImageBuilder.create().packages(pkgs).build();
      String name = pkgs.isEmpty() ? "micro" : "micro+" + String.join("+", pkgs);
      flavours.put(name, img);
      System.out.printf(
          "image %-22s ready in %.1f s (built now or cached)%n",
          name, (System.nanoTime() - t0) / 1e9);
    }
    System.out.printf(
        "%n%-22s %14s %18s %18s%n", "flavour", "kernel+initrd", "package disk", "(allocated)");
    for (Map.Entry<String, MicroImage> e : flavours.entrySet()) {
      MicroImage i = e.getValue();
      long disk = i.packageDiskIfAny().map(FlavourBenchmark::size).orElse(0L);
      long alloc = i.packageDiskIfAny().map(Stats::allocated).orElse(0L);
      System.out.printf(
          "%-22s %11.1f MB %15.1f MB %15.1f MB%n",
          e.getKey(), i.sizeBytes() / 1e6, disk / 1e6, alloc / 1e6);
    }
    Map<String, List<Double>> m = new LinkedHashMap<>();
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      for (int r = 0; r < rounds; r++) {
        for (Map.Entry<String, MicroImage> e : flavours.entrySet()) {
          round(conn, e.getKey(), e.getValue(), m);
        }
      }
    }
    System.out.printf("%n%d rounds, medians (ms):%n", rounds);
    double base = Stats.median(Stats.samples(m, "micro: start -> agent ready"));
    for (Map.Entry<String, List<Double>> e : m.entrySet()) {
      double med = Stats.median(e.getValue());
      String ratio =
          e.getKey().endsWith("start -> agent ready")
              ? String.format("  (%.2fx the plain micro image)", med / base)
              : "";
      System.out.printf("  %-48s %8.0f%s%n", e.getKey(), med, ratio);
    }
  }

  private static void round(
      LibvirtConnection conn, String name, MicroImage image, Map<String, List<Double>> m)
      throws Exception {
    String vmName = "agentvm-bench-flavour-" + UUID.randomUUID().toString().substring(0, 8);
    try (VM vm = conn.define(GuestImages.template(vmName, image).build())) {
      long t0 = System.nanoTime();
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      add(m, name + ": start -> agent ready", (System.nanoTime() - t0) / 1e6);
      if (!image.packages().isEmpty()) {
        time(agent, m, name + ": first python3 -c pass", "python3", "-c", "pass");
        time(agent, m, name + ": second python3 -c pass", "python3", "-c", "pass");
      }
      if (image.packages().contains("git")) {
        time(agent, m, name + ": first git --version", "git", "--version");
      }
      vm.shutdown(Duration.ZERO);
    }
  }

  private static void time(
      AgentClient agent, Map<String, List<Double>> m, String key, String... argv) throws Exception {
    long t0 = System.nanoTime();
    ExecResult r = agent.exec(ExecRequest.command(argv).withTimeout(Duration.ofMinutes(1)));
    if (r.exitCode() != 0) {
      throw new IllegalStateException(
          String.join(" ", argv)
              + " failed: "
              + new String(r.stderr(), java.nio.charset.StandardCharsets.UTF_8));
    }
    add(m, key, (System.nanoTime() - t0) / 1e6);
  }

  private static long size(Path p) {
    try {
      return Files.size(p);
    } catch (java.io.IOException e) {
      return -1;
    }
  }

  private static void add(Map<String, List<Double>> m, String k, double v) {
    m.computeIfAbsent(k, x -> new ArrayList<>()).add(v);
  }
}
