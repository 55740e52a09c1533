package dev.agentvm.execution;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VMTemplate;
import java.time.Duration;

/**
 * Run in a child JVM by ExecutorKillIT: a pool of clones with one execution running in it; says
 * READY once the code runs, then waits to be killed.
 */
public final class ExecutorOrphanMaker {
  public static void main(String[] args) throws Exception {
    String name = args[0];
    LibvirtConnection conn = LibvirtConnection.open();
    CloneVmFactory factory =
        CloneVmFactory.capture(
            conn, VMTemplate.builder(name).boot(TestVms.boot()).build(), Duration.ofMinutes(2));
    VMPool pool =
        VMPool.start(factory, PoolConfig.DEFAULT.withSize(2, 2).withNamePrefix(name + "-"));
    AgentExecutor executor =
        AgentExecutor.builder(pool)
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
