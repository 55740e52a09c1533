package dev.agentvm.benchmarks;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.Execution;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.ExecutionResult;
import dev.agentvm.execution.TaskState;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Sustained load (issue 19): N trivial executions submitted at once through an executor that keeps
 * P sandboxes ready and runs P at a time. Reports executions per second, host CPU seconds per
 * execution, latency from submit to result (p50/p99), where the time goes, and how much of the
 * machine's CPU sat idle while executions waited. The ratio is wall time over the host CPU the run
 * used spread over every core: 1 means no core sat idle (the requirement of the refill
 * pipeline); it says nothing about the CPU each execution costs, reported beside it. Other
 * processes' load counts as used: run it on a quiet host.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.LoadBenchmark [n] [pool]
 * </pre>
 */
public final class LoadBenchmark {
  public static void main(String[] args) throws Exception {
    int n = args.length > 0 ? Integer.parseInt(args[0]) : 100;
    int pool = args.length > 1 ? Integer.parseInt(args[1]) : 4;
    int cores = Runtime.getRuntime().availableProcessors();
    Path outputs = Files.createTempDirectory("agentvm-bench-load");
    SimpleMeterRegistry meters = new SimpleMeterRegistry();
    List<Double> latency = new ArrayList<>();
    double wall;
    long[] cpu0;
    long[] cpu1;
    Timer create; // read before the sandboxes close: closing takes their meters away
    List<Double> idleWhileWaiting = new ArrayList<>();
    int failed = 0;
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn)) {
      sandboxes.bindTo(meters);
      SandboxSpec spec = SandboxSpec.defaults().withNamePrefix("agentvm-bench-load-");
      sandboxes.warmUp(spec);
      try (AgentExecutor executor =
          AgentExecutor.builder(sandboxes)
              .sandbox(spec)
              .keepReady(pool)
              .maxConcurrent(pool)
              .outputRoot(outputs)
              .build()) {
        SandboxSpec each = spec.withIdleTimeout(Duration.ZERO);
        long end = System.nanoTime() + Duration.ofMinutes(10).toNanos();
        while (sandboxes.readyCount(each) < pool && System.nanoTime() < end) {
          Thread.sleep(20);
        }
        AtomicBoolean running = new AtomicBoolean(true);
        List<java.util.concurrent.CompletableFuture<ExecutionResult>> runs = new ArrayList<>();
        List<Long> submitted = new ArrayList<>();
        Thread sampler =
            new Thread(
                () -> {
                  try {
                    long[] prev = CpuTimes.read();
                    while (running.get()) {
                      Thread.sleep(100);
                      long[] now = CpuTimes.read();
                      long total = now[0] - prev[0];
                      if (total > 0) {
                        idleWhileWaiting.add(100.0 * (now[1] - prev[1]) / total);
                      }
                      prev = now;
                    }
                  } catch (Exception e) {
                    running.set(false);
                  }
                });
        sampler.setDaemon(true); // a failed run must not keep the JVM alive
        cpu0 = CpuTimes.read();
        long t0 = System.nanoTime();
        sampler.start();
        try {
          long[] done = new long[n];
          for (int i = 0; i < n; i++) {
            int k = i;
            submitted.add(System.nanoTime());
            Execution e = executor.submit(ExecutionRequest.command("true").build());
            runs.add(
                e.result()
                    .thenApply(
                        r -> {
                          done[k] = System.nanoTime();
                          return r;
                        }));
          }
          for (int i = 0; i < n; i++) {
            ExecutionResult r = runs.get(i).get(10, TimeUnit.MINUTES);
            if (r.state() != TaskState.COMPLETED || r.exitCode() != 0) {
              failed++;
            }
          }
          for (int i = 0; i < n; i++) {
            latency.add(Stats.ms(done[i] - submitted.get(i)));
          }
          wall = (System.nanoTime() - t0) / 1e9;
        } finally {
          running.set(false);
        }
        sampler.join();
        cpu1 = CpuTimes.read();
        create = meters.find("agentvm.sandbox.create").tag("outcome", "success").timer();
        sandboxes.keepReady(each, 0);
      }
    } finally {
      try (var s = Files.walk(outputs)) {
        for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
    double busySeconds = ((cpu1[0] - cpu1[1]) - (cpu0[0] - cpu0[1])) / 100.0; // USER_HZ 100
    double floor = busySeconds / cores;
    System.out.printf(
        "%nLoad benchmark: %d executions of `true`, %d sandboxes ready and %d at a time, %d cores%n",
        n, pool, pool, cores);
    System.out.printf("  wall %.1f s, %.2f executions/s, %d failed%n", wall, n / wall, failed);
    System.out.printf(
        "  host CPU %.1f s busy = %.2f CPU s per execution%n", busySeconds, busySeconds / n);
    System.out.printf(
        "  submit -> result: p50 %.0f ms, p99 %.0f ms (queued behind the others)%n",
        Stats.pct(latency, 50), Stats.pct(latency, 99));
    if (create != null) {
      System.out.printf(
          "  where the time goes: %d sandboxes made, mean %.0f ms each (restore of the warm image,"
              + " new identity, agent ready); the command itself is a few ms%n",
          create.count(), create.mean(TimeUnit.MILLISECONDS));
    }
    System.out.printf(
        "  idle CPU while executions waited: median %.0f %%, max %.0f %% of the machine%n",
        Stats.median(idleWhileWaiting),
        idleWhileWaiting.stream().mapToDouble(d -> d).max().orElse(0));
    Stats.ratio(
        n + " executions, pool of " + pool + ": wall / (host CPU used / cores), 1 = no core idle",
        wall,
        floor,
        "s",
        true,
        1.1);
  }

  /** Jiffies of the whole machine from /proc/stat: {total, idle + iowait}. */
  static final class CpuTimes {
    private CpuTimes() {}

    static long[] read() throws java.io.IOException {
      String cpu = Files.readAllLines(Path.of("/proc/stat")).get(0);
      String[] f = cpu.trim().split("\\s+", -1);
      long total = 0;
      for (int i = 1; i < Math.min(f.length, 9); i++) { // user..steal; guest is inside user
        total += Long.parseLong(f[i]);
      }
      return new long[] {total, Long.parseLong(f[4]) + Long.parseLong(f[5])};
    }
  }
}
