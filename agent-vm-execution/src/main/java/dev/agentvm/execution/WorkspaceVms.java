package dev.agentvm.execution;

import dev.agentvm.core.AgentVmException;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import dev.agentvm.storage.FilesystemShare;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/** What both factories do to finish and to remove a pool VM. */
final class WorkspaceVms {
  private WorkspaceVms() {}

  /** Removes the VM (guest asked to power off within {@code grace}) and then its workspace. */
  static void destroy(PooledVm vm, Duration grace) {
    List<RuntimeException> failures = new ArrayList<>();
    VM v = vm.vm();
    FilesystemShare ws = vm.workspace();
    if (v != null) {
      try {
        v.shutdown(grace);
      } catch (RuntimeException e) {
        failures.add(e);
      }
      try {
        v.close();
      } catch (RuntimeException e) {
        failures.add(e);
      }
    }
    // the workspace goes only once the VM is gone: never delete what a live guest still uses
    if (ws != null && (v == null || v.state() == VMState.UNDEFINED)) {
      try {
        ws.close();
      } catch (RuntimeException e) {
        failures.add(e);
      }
    }
    if (!failures.isEmpty()) {
      AgentVmException e =
          new AgentVmException(
              "removing pool VM " + vm.name() + ": " + failures.get(0).getMessage(),
              failures.get(0));
      failures.subList(1, failures.size()).forEach(e::addSuppressed);
      throw e;
    }
  }

  /** Running, not declared dead by a heartbeat, and its agent answers a ping within 2 s. */
  static boolean isHealthy(PooledVm vm) {
    VM v = vm.vm();
    if (v == null) {
      return true;
    }
    try {
      return v.state() == VMState.RUNNING
          && v.health() != dev.agentvm.core.agent.HeartbeatMonitor.Health.DEAD
          && v.awaitAgent(Duration.ofSeconds(2)).ping(Duration.ofSeconds(2)) != null;
    } catch (java.io.IOException | RuntimeException e) {
      return false;
    }
  }

  /** Starts a VM given its new workspace; the workspace is mounted by {@link #make}. */
  @FunctionalInterface
  interface Starter {
    VM start(FilesystemShare workspace) throws Exception;
  }

  /**
   * Makes a pool VM: a workspace under {@code root}, the VM started by {@code starter}, the
   * workspace mounted in it. On any failure the VM and the workspace are removed again.
   */
  static PooledVm make(
      java.nio.file.Path root,
      String name,
      long nowNanos,
      String kind,
      Duration agentDeadline,
      Starter starter)
      throws Exception {
    FilesystemShare ws = FilesystemShare.create(root, name);
    @Nullable VM vm = null;
    try {
      vm = starter.start(ws);
      ws.mount(vm.awaitAgent(agentDeadline), agentDeadline);
      return new PooledVm(name, vm, ws, kind, nowNanos);
    } catch (Exception | Error e) {
      try {
        destroy(new PooledVm(name, vm, ws, kind, nowNanos), Duration.ZERO);
      } catch (RuntimeException c) {
        e.addSuppressed(c);
      }
      throw e;
    }
  }
}
