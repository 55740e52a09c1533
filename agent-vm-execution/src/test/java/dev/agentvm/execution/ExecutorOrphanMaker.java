package dev.agentvm.execution;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;

/**
 * Run in a child JVM by ExecutorKillIT: an executor with one sandbox kept ready and one execution
 * running; says READY once the code runs, then waits to be killed.
 */
public final class ExecutorOrphanMaker {
  public static void main(String[] args) throws Exception {
    String name = args[0];
    LibvirtConnection conn = LibvirtConnection.open();
    Sandboxes sandboxes = Sandboxes.open(conn);
    AgentExecutor executor =
        AgentExecutor.builder(sandboxes)
            .sandbox(SandboxSpec.defaults().withNamePrefix(name + "-"))
            .keepReady(1)
            .listener(
                (id, from, to, vm) -> {
                  if (to == TaskState.RUNNING) {
                    System.out.println("READY " + vm);
                    System.out.flush();
                  }
                })
            .build();
    executor.submit(ExecutionRequest.script("sleep 600").build());
    Thread.sleep(Long.MAX_VALUE);
  }
}
