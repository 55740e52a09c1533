package dev.agentvm.benchmarks;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.CloneVmFactory;
import dev.agentvm.execution.Execution;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.PoolConfig;
import dev.agentvm.execution.PooledVm;
import dev.agentvm.execution.VMPool;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * The executor's costs, side by side in one run:
 *
 * <ul>
 *   <li>pool acquire with warm VMs, p50/p99;
 *   <li>an execution of {@code true} through the executor against a raw agent exec of {@code true}
 *       on a pool VM, rounds interleaved: the executor's overhead;
 *   <li>10 concurrent trivial executions, with a warm pool and with an empty one, against one
 *       execution under the same conditions.
 * </ul>
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.ExecutionBenchmark [rounds]
 * </pre>
 */
public final class ExecutionBenchmark {
  private static final Duration AGENT = Duration.ofMinutes(2);

  public static void main(String[] args) throws Exception {
    int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 20;
    MicroImage image = MicroImageBuilder.create().build();
    VMTemplate template =
        VMTemplate.builder("agentvm-bench-exec-" + UUID.randomUUID().toString().substring(0, 8))
            .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE))
            .build();
    Path outputs = Files.createTempDirectory("agentvm-bench-outputs");
    List<String> report = new ArrayList<>();
    try (LibvirtConnection conn = LibvirtConnection.open();
        CloneVmFactory factory = CloneVmFactory.capture(conn, template, AGENT)) {
      PoolConfig base = PoolConfig.DEFAULT.withNamePrefix("agentvm-bench-pool-");

      List<Double> acquire = new ArrayList<>();
      List<Double> raw = new ArrayList<>();
      List<Double> viaExecutor = new ArrayList<>();
      try (VMPool pool = VMPool.start(factory, base.withSize(2, 3));
          AgentExecutor executor = AgentExecutor.builder(pool).outputRoot(outputs).build()) {
        for (int r = 0; r < rounds; r++) {
          awaitIdle(pool, 2);
          long t0 = System.nanoTime();
          PooledVm vm = pool.acquire(AGENT);
          acquire.add(Stats.ms(System.nanoTime() - t0));
          AgentClient agent =
              java.util.Objects.requireNonNull(vm.vm(), "a pool VM without a VM").awaitAgent(AGENT);
          t0 = System.nanoTime();
          agent.exec(ExecRequest.command("true"));
          raw.add(Stats.ms(System.nanoTime() - t0));
          pool.release(vm);
          awaitIdle(pool, 2);
          t0 = System.nanoTime();
          executor.execute(ExecutionRequest.command("true").build());
          viaExecutor.add(Stats.ms(System.nanoTime() - t0));
          System.err.printf("round %d/%d%n", r + 1, rounds);
        }
      }
      report.add(
          String.format(
              "pool acquire, warm: p50 %.3f ms, p99 %.3f ms (goal: p99 < 5 ms)",
              Stats.median(acquire), Stats.pct(acquire, 99)));
      report.add(
          String.format(
              "raw agent exec of true: p50 %.1f ms, p99 %.1f ms",
              Stats.median(raw), Stats.pct(raw, 99)));
      report.add(
          String.format(
              "executor execution of true: p50 %.1f ms, p99 %.1f ms",
              Stats.median(viaExecutor), Stats.pct(viaExecutor, 99)));
      report.add(
          String.format(
              "executor overhead p50: %.1f ms (goal: < 20 ms)",
              Stats.median(viaExecutor) - Stats.median(raw)));

      for (boolean warm : new boolean[] {true, false}) {
        int n = 10;
        try (VMPool pool = VMPool.start(factory, base.withSize(warm ? n : 0, n));
            AgentExecutor executor =
                AgentExecutor.builder(pool)
                    .outputRoot(outputs)
                    .acquireTimeout(Duration.ofMinutes(10))
                    .build()) {
          if (warm) {
            awaitIdle(pool, n);
          }
          long t0 = System.nanoTime();
          executor.execute(ExecutionRequest.script("echo one").build());
          double one = Stats.ms(System.nanoTime() - t0);
          if (warm) {
            awaitIdle(pool, n);
          } else {
            awaitIdle(pool, 0);
            Thread.sleep(2000); // let the used VM's removal finish
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
                  "%s pool: one execution %.0f ms, %d concurrent %.0f ms, ratio %.1f (goal: 10 in < 30 s)",
                  warm ? "warm (10 ready)" : "empty (clones made on demand)",
                  one,
                  n,
                  all,
                  all / one));
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

  private static void awaitIdle(VMPool pool, int n) throws InterruptedException {
    long end = System.nanoTime() + Duration.ofMinutes(5).toNanos();
    while (pool.idleCount() < n && System.nanoTime() < end) {
      Thread.sleep(20);
    }
  }
}
