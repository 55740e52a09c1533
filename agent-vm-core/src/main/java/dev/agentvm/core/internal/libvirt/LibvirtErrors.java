package dev.agentvm.core.internal.libvirt;

import dev.agentvm.core.AgentVmException;
import dev.agentvm.core.ConnectionException;
import dev.agentvm.core.HypervisorException;
import dev.agentvm.core.NoSuchVmException;
import dev.agentvm.core.SnapshotException;
import dev.agentvm.core.VmStateException;
import org.libvirt.Error;
import org.libvirt.LibvirtException;

/** The one place libvirt errors become agent-vm exceptions. The original is kept as the cause. */
final class LibvirtErrors {
  private LibvirtErrors() {}

  static AgentVmException translate(String uri, String operation, LibvirtException e) {
    Error err = e.getError();
    Error.ErrorNumber code = err == null ? null : err.getCode();
    String msg =
        operation
            + " failed: "
            + (err == null || err.getMessage() == null ? e.getMessage() : err.getMessage().trim());
    if (code == null) {
      return new HypervisorException(msg, e);
    }
    return switch (code) {
      case VIR_ERR_NO_DOMAIN -> new NoSuchVmException(msg, e);
      case VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_ERR_SNAPSHOT_REVERT_RISKY ->
          new SnapshotException(msg + " [" + code + "]", e);
      case VIR_ERR_OPERATION_INVALID -> new VmStateException(msg, e);
      case VIR_ERR_NO_CONNECT,
          VIR_ERR_RPC,
          VIR_ERR_AUTH_FAILED,
          VIR_ERR_AUTH_CANCELLED,
          VIR_ERR_AUTH_UNAVAILABLE ->
          new ConnectionException(uri, msg, e);
      default -> new HypervisorException(msg + " [" + code + "]", e);
    };
  }

  /** Whether a connect failure is worth retrying (daemon starting or restarting). */
  static boolean isTransient(LibvirtException e) {
    Error err = e.getError();
    if (err == null || err.getCode() == null) {
      return false;
    }
    return switch (err.getCode()) {
      case VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC, VIR_ERR_NO_CONNECT, VIR_ERR_INTERNAL_ERROR -> true;
      default -> false;
    };
  }
}
