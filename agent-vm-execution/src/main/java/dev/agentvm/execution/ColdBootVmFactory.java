package dev.agentvm.execution;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.storage.FilesystemShare;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Makes pool VMs by booting {@code template} anew each time: slower than {@link CloneVmFactory},
 * but needs no memory image, and every VM is a fresh boot.
 *
 * <p>The template's disks are attached to every VM: read-only ones (an image flavour's package
 * disk) are shared freely; a writable one can serve one running VM only (QEMU's image lock refuses
 * a second), so give such a template a pool of at most one VM.
 *
 * <p>On this machine's libvirt only (workspaces are 9p shares of local directories): the
 * constructor refuses a connection to another machine.
 */
public final class ColdBootVmFactory extends WorkspaceVmFactory {
  private final LibvirtConnection conn;
  private final VMTemplate template;

  public ColdBootVmFactory(
      LibvirtConnection conn,
      VMTemplate template,
      Path workspaces,
      Duration agentDeadline,
      Duration discardGrace) {
    super(workspaces, agentDeadline, discardGrace);
    requireLocal(conn);
    this.conn = conn;
    this.template = template;
  }

  @Override
  VM start(String name, FilesystemShare workspace, Duration agentDeadline) {
    VMTemplate.Builder b = template.copyAs(name);
    template.disks().forEach(b::disk); // copyAs leaves disks out
    workspace.shares().forEach(b::share);
    VM vm = conn.define(b.build());
    try {
      vm.start();
    } catch (RuntimeException e) {
      try {
        vm.close(); // defined but not started: not yet the pool's to clean up
      } catch (RuntimeException c) {
        e.addSuppressed(c);
      }
      throw e;
    }
    return vm;
  }

  @Override
  public String kind() {
    return "cold";
  }
}
