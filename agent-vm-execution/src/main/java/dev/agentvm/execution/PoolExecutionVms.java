package dev.agentvm.execution;

import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import dev.agentvm.core.VmCrashedException;
import dev.agentvm.core.agent.AgentChannelClosedException;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.storage.ExtractedOutput;
import dev.agentvm.storage.FilesystemShare;
import dev.agentvm.storage.OutputLimits;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Executions in VMs from a {@link VMPool}: the workspace is the VM's 9p shares (inputs written on
 * the host, outputs copied on the host after the VM was paused). For VMs a sandbox cannot be, e.g.
 * with a git task's persistent slot disk.
 */
final class PoolExecutionVms implements ExecutionVm.Source {
  private static final String INPUT = AgentExecutor.GUEST_INPUT + "/";

  private final VMPool pool;
  private final Duration acquireTimeout;

  PoolExecutionVms(VMPool pool, Duration acquireTimeout) {
    this.pool = pool;
    this.acquireTimeout = acquireTimeout;
  }

  @Override
  public ExecutionVm acquire() {
    PooledVm pv;
    try {
      pv = pool.acquire(acquireTimeout);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting for a VM", e);
    }
    VM vm = pv.vm();
    FilesystemShare ws = pv.workspace();
    if (vm == null || ws == null) {
      pool.discard(pv, "failed");
      throw new IllegalStateException(pv.name() + " has no VM or no workspace to run code in");
    }
    return new InPoolVm(pool, pv, vm, ws);
  }

  private static final class InPoolVm implements ExecutionVm {
    private final VMPool pool;
    private final PooledVm pv;
    private final VM vm;
    private final FilesystemShare ws;
    private volatile String disposal = "used";
    private volatile boolean detached;

    InPoolVm(VMPool pool, PooledVm pv, VM vm, FilesystemShare ws) {
      this.pool = pool;
      this.pv = pv;
      this.vm = vm;
      this.ws = ws;
    }

    @Override
    public String name() {
      return pv.name();
    }

    private static String input(String guestPath) {
      if (!guestPath.startsWith(INPUT)) {
        throw new IllegalArgumentException("a pool VM takes files only under " + INPUT);
      }
      return guestPath.substring(INPUT.length());
    }

    @Override
    public void write(String guestPath, byte[] content) {
      ws.addInput(input(guestPath), content);
    }

    @Override
    public void upload(Path source, String guestPath) {
      ws.addInput(input(guestPath), source);
    }

    @Override
    public void mkdirs(String guestDir) {
      // the three shares are mounted at /workspace already; inputs' parents are made on the host
    }

    @Override
    public Command start(ExecRequest request, OutputListener listener) throws IOException {
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(10));
      AgentClient.Execution e = agent.execAsync(request, listener);
      CompletableFuture<ExecResult> result =
          e.result()
              .exceptionallyComposeAsync(
                  t -> {
                    Throwable c =
                        t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
                    return CompletableFuture.failedFuture(
                        c instanceof AgentChannelClosedException closed ? crashedOr(closed) : c);
                  });
      return new RunningCommand(result, () -> e.kill(Duration.ofSeconds(5)));
    }

    /**
     * QEMU dead (libvirt may notice a moment after the channel closed): a crash, else {@code e}.
     */
    private Exception crashedOr(AgentChannelClosedException e) {
      VMState s;
      try {
        s = vm.state();
        long end = System.nanoTime() + Duration.ofSeconds(3).toNanos();
        while (s == VMState.RUNNING && System.nanoTime() < end) {
          Thread.sleep(50);
          s = vm.state();
        }
      } catch (InterruptedException x) {
        Thread.currentThread().interrupt();
        return e;
      } catch (RuntimeException x) {
        return e;
      }
      if (s == VMState.CRASHED || s == VMState.STOPPED || s == VMState.UNDEFINED) {
        disposal = "crashed";
        return new VmCrashedException(
            "VM "
                + pv.name()
                + " is "
                + s
                + " ("
                + e.getMessage()
                + "); console log: "
                + vm.consoleLog(),
            e);
      }
      return e;
    }

    @Override
    public StatusReport status(Duration deadline) throws IOException {
      return vm.awaitAgent(deadline).status(deadline);
    }

    @Override
    public ExtractedOutput extract(String guestDir, Path dest, OutputLimits limits) {
      if (!guestDir.equals(AgentExecutor.GUEST_OUTPUT)) {
        throw new IllegalArgumentException(
            "a pool VM brings back only " + AgentExecutor.GUEST_OUTPUT);
      }
      // nothing in the guest may change the output while the host copies it: pause first (the
      // VM is destroyed afterwards anyway, without a grace period when paused)
      vm.pause();
      return ws.extractOutput(dest, limits);
    }

    @Override
    public void quarantine() {
      pool.detach(pv);
      detached = true;
      vm.pause();
    }

    @Override
    public void close() {
      if (!detached) {
        pool.discard(pv, disposal);
      } else {
        WorkspaceVms.destroy(pv, Duration.ZERO); // detached for quarantine
      }
    }
  }
}
