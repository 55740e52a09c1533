package dev.agentvm.examples;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.CloneVmFactory;
import dev.agentvm.execution.Execution;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.ExecutionResult;
import dev.agentvm.execution.PoolConfig;
import dev.agentvm.execution.VMPool;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Ten agents at once through a pool of clones of one memory image; prints where the time went.
 *
 * <pre>./scripts/run-example.sh ParallelAgents [count] [pool max]</pre>
 */
public final class ParallelAgents {
  public static void main(String[] args) throws Exception {
    int count = args.length > 0 ? Integer.parseInt(args[0]) : 10;
    int max = args.length > 1 ? Integer.parseInt(args[1]) : count;
    long t0 = System.nanoTime();
    try (LibvirtConnection conn = LibvirtConnection.open();
        CloneVmFactory factory =
            CloneVmFactory.capture(conn, Images.microTemplate("parallel"), Duration.ofMinutes(2))) {
      long tImage = System.nanoTime();
      try (VMPool pool =
              VMPool.start(
                  factory,
                  PoolConfig.DEFAULT.withSize(0, max).withNamePrefix("agentvm-parallel-"));
          AgentExecutor executor =
              AgentExecutor.builder(pool).acquireTimeout(Duration.ofMinutes(5)).build()) {
        long tStart = System.nanoTime();
        List<Execution> runs = new ArrayList<>();
        for (int i = 0; i < count; i++) {
          runs.add(
              executor.submit(
                  ExecutionRequest.script("echo \"agent " + i + " on $(hostname)\"", "sh")
                      .build()));
        }
        for (Execution e : runs) {
          ExecutionResult r = e.result().join();
          System.out.printf(
              "%-22s %-10s %6d ms  %s", r.id(), r.state(), r.duration().toMillis(), r.stdoutText());
        }
        long tDone = System.nanoTime();
        System.out.printf(
            "%d agents: memory image %d ms (once), then all %d done %d ms after submission%n",
            count, (tImage - t0) / 1_000_000, count, (tDone - tStart) / 1_000_000);
      }
    }
  }
}
