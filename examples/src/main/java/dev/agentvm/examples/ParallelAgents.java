package dev.agentvm.examples;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.Execution;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.ExecutionResult;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.util.ArrayList;
import java.util.List;

/**
 * Ten agents at once, each in a sandbox restored from one warm image; prints where the time went.
 *
 * <pre>./scripts/run-example.sh ParallelAgents [count] [max at once]</pre>
 */
public final class ParallelAgents {
  public static void main(String[] args) throws Exception {
    int count = args.length > 0 ? Integer.parseInt(args[0]) : 10;
    int max = args.length > 1 ? Integer.parseInt(args[1]) : count;
    long t0 = System.nanoTime();
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn)) {
      SandboxSpec spec = SandboxSpec.defaults().withNamePrefix("agentvm-parallel-");
      sandboxes.warmUp(spec); // once: every sandbox after it is a restore, not a boot
      long tImage = System.nanoTime();
      try (AgentExecutor executor =
          AgentExecutor.builder(sandboxes).sandbox(spec).maxConcurrent(max).build()) {
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
            "%d agents: warm image %d ms (once), then all %d done %d ms after submission%n",
            count, (tImage - t0) / 1_000_000, count, (tDone - tStart) / 1_000_000);
      }
    }
  }
}
