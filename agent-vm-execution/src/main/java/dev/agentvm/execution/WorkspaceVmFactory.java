package dev.agentvm.execution;

import dev.agentvm.core.VM;
import dev.agentvm.storage.FilesystemShare;
import java.nio.file.Path;
import java.time.Duration;

/** What the clone and cold-boot factories share: a workspace per VM, and how VMs go. */
abstract class WorkspaceVmFactory implements VmFactory {
  private final Path workspaces;
  private final Duration agentDeadline;
  private final Duration discardGrace;

  WorkspaceVmFactory(Path workspaces, Duration agentDeadline, Duration discardGrace) {
    this.workspaces = workspaces;
    this.agentDeadline = agentDeadline;
    this.discardGrace = discardGrace;
  }

  /**
   * Refuses a host that does not share this machine's files: a pool VM's workspace is a 9p share of
   * directories here, which another machine's QEMU cannot open. Sandboxes are the pool that works
   * on every host.
   *
   * @throws IllegalArgumentException for a connection to another machine
   */
  static void requireLocal(dev.agentvm.core.LibvirtConnection conn) {
    if (conn.hostStorage().isPresent()) {
      throw new IllegalArgumentException(
          "a VMPool's VMs get their workspaces as 9p shares of this machine's directories, which"
              + " the host at "
              + conn.uri()
              + " cannot open: for a pool there, use AgentExecutor over Sandboxes or SandboxHosts"
              + " (their workspaces are disks on the VM's host)");
    }
  }

  /** Starts the VM {@code name}, its workspace's shares attached; the agent is awaited after. */
  abstract VM start(String name, FilesystemShare workspace, Duration agentDeadline)
      throws Exception;

  @Override
  public final PooledVm create(String name, long nowNanos) throws Exception {
    return WorkspaceVms.make(
        workspaces, name, nowNanos, kind(), agentDeadline, ws -> start(name, ws, agentDeadline));
  }

  @Override
  public final void destroy(PooledVm vm) {
    WorkspaceVms.destroy(vm, discardGrace);
  }

  @Override
  public final void retire(PooledVm vm, Duration grace) {
    WorkspaceVms.destroy(vm, grace);
  }

  @Override
  public final boolean isHealthy(PooledVm vm) {
    return WorkspaceVms.isHealthy(vm);
  }
}
