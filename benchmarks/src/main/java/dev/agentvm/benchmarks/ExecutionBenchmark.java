package dev.agentvm.benchmarks;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.Execution;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The executor's costs, side by side in one run:
 *
 * <ul>
 *   <li>handing out a sandbox kept ready ({@code Sandboxes.keepReady}), p50/p99;
 *   <li>an execution of {@code true} through the executor against a raw EXEC of {@code true} in a
 *       ready sandbox (the floor), rounds interleaved: the executor's overhead;
 *   <li>10 concurrent trivial executions, with 10 sandboxes ready and with none (warm-image
 *       restores on demand), against one execution under the same conditions.
 * </ul>
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.ExecutionBenchmark [rounds]
 * </pre>
 */
public final class ExecutionBenchmark {
  public static void main(String[] args) throws Exception {
    int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 20;
    Path outputs = Files.createTempDirectory("agentvm-bench-outputs");
    List<String> report = new ArrayList<>();
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn)) {
      SandboxSpec spec = SandboxSpec.defaults().withNamePrefix("agentvm-bench-exec-");
      sandboxes.warmUp(spec);
      List<Double> take = new ArrayList<>();
      List<Double> raw = new ArrayList<>();
      List<Double> viaExecutor = new ArrayList<>();
      try (AgentExecutor executor =
          AgentExecutor.builder(sandboxes).sandbox(spec).keepReady(2).outputRoot(outputs).build()) {
        SandboxSpec each = spec.withIdleTimeout(Duration.ZERO);
        for (int r = 0; r < rounds; r++) {
          awaitReady(sandboxes, each, 2);
          long t0 = System.nanoTime();
          try (Sandbox sb = sandboxes.create(each)) {
            take.add(Stats.ms(System.nanoTime() - t0));
            t0 = System.nanoTime();
            sb.exec(ExecRequest.command("true"));
            raw.add(Stats.ms(System.nanoTime() - t0));
          }
          awaitReady(sandboxes, each, 2);
          t0 = System.nanoTime();
          executor.execute(ExecutionRequest.command("true").build());
          viaExecutor.add(Stats.ms(System.nanoTime() - t0));
          System.err.printf("round %d/%d%n", r + 1, rounds);
        }
      }
      report.add(
          String.format(
              "ready sandbox handed out: p50 %.3f ms, p99 %.3f ms (goal: p99 < 5 ms)",
              Stats.median(take), Stats.pct(take, 99)));
      report.add(
          String.format(
              "raw EXEC of true in a sandbox (floor): p50 %.1f ms, p99 %.1f ms",
              Stats.median(raw), Stats.pct(raw, 99)));
      report.add(
          String.format(
              "executor execution of true (ready sandbox, dirs, exec, extract; closed after): p50 %.1f"
                  + " ms, p99 %.1f ms",
              Stats.median(viaExecutor), Stats.pct(viaExecutor, 99)));
      report.add(
          String.format(
              "executor overhead p50: %.1f ms over the floor (goal: < 20 ms)",
              Stats.median(viaExecutor) - Stats.median(raw)));
      Stats.ratio(
          "executor execution of true p50 / raw EXEC in a ready sandbox",
          Stats.median(viaExecutor),
          Stats.median(raw),
          "ms",
          true,
          Double.NaN);

      for (boolean ready : new boolean[] {true, false}) {
        int n = 10;
        SandboxSpec shape =
            spec.withNamePrefix(ready ? "agentvm-bench-ready-" : "agentvm-bench-cold-");
        try (AgentExecutor executor =
            AgentExecutor.builder(sandboxes)
                .sandbox(shape)
                .keepReady(ready ? n : 0)
                .outputRoot(outputs)
                .build()) {
          SandboxSpec each = shape.withIdleTimeout(Duration.ZERO);
          if (ready) {
            awaitReady(sandboxes, each, n);
          }
          long t0 = System.nanoTime();
          executor.execute(ExecutionRequest.script("echo one").build());
          double one = Stats.ms(System.nanoTime() - t0);
          if (ready) {
            awaitReady(sandboxes, each, n);
          }
          t0 = System.nanoTime();
          List<Execution> runs = new ArrayList<>();
          for (int i = 0; i < n; i++) {
            runs.add(executor.submit(ExecutionRequest.script("echo " + i).build()));
          }
          for (Execution e : runs) {
            e.result().join();
          }
          double all = Stats.ms(System.nanoTime() - t0);
          report.add(
              String.format(
                  "%s: one execution %.0f ms, %d concurrent %.0f ms, ratio %.1f (goal: 10 in < 30"
                      + " s)",
                  ready ? "10 sandboxes ready" : "none ready (warm-image restores on demand)",
                  one,
                  n,
                  all,
                  all / one));
          sandboxes.keepReady(each, 0);
        }
      }
    } finally {
      try (var s = Files.walk(outputs)) {
        for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
    System.out.println();
    System.out.println("Execution benchmark, " + rounds + " rounds");
    report.forEach(l -> System.out.println("  " + l));
  }

  private static void awaitReady(Sandboxes sandboxes, SandboxSpec spec, int n)
      throws InterruptedException {
    long end = System.nanoTime() + Duration.ofMinutes(10).toNanos();
    while (sandboxes.readyCount(spec) < n && System.nanoTime() < end) {
      Thread.sleep(20);
    }
  }
}
