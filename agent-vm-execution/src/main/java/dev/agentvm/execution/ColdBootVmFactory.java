package dev.agentvm.execution;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Makes pool VMs by booting {@code template} anew each time: slower than {@link CloneVmFactory},
 * but needs no memory image, and every VM is a fresh boot.
 */
public final class ColdBootVmFactory implements VmFactory {
  private final LibvirtConnection conn;
  private final VMTemplate template;
  private final Path workspaces;
  private final Duration agentDeadline;
  private final Duration discardGrace;

  public ColdBootVmFactory(
      LibvirtConnection conn,
      VMTemplate template,
      Path workspaces,
      Duration agentDeadline,
      Duration discardGrace) {
    this.conn = conn;
    this.template = template;
    this.workspaces = workspaces;
    this.agentDeadline = agentDeadline;
    this.discardGrace = discardGrace;
  }

  @Override
  public PooledVm create(String name, long nowNanos) throws Exception {
    return WorkspaceVms.make(
        workspaces,
        name,
        nowNanos,
        kind(),
        agentDeadline,
        ws -> {
          VMTemplate.Builder b = template.copyAs(name);
          ws.shares().forEach(b::share);
          VM vm = conn.define(b.build());
          vm.start();
          return vm;
        });
  }

  @Override
  public void destroy(PooledVm vm) {
    WorkspaceVms.destroy(vm, discardGrace);
  }

  @Override
  public void retire(PooledVm vm, Duration grace) {
    WorkspaceVms.destroy(vm, grace);
  }

  @Override
  public boolean isHealthy(PooledVm vm) {
    return WorkspaceVms.isHealthy(vm);
  }

  @Override
  public String kind() {
    return "cold";
  }
}
