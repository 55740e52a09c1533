package dev.agentvm.core;

import java.nio.file.Path;

/**
 * Where agent-vm keeps per-host state and per-VM runtime files (agent socket, console log).
 *
 * <p>The state root is {@code $AGENTVM_STATE_DIR}, else {@code /var/lib/agent-vm} for root
 * (libvirt's QEMU user must reach the files, so nothing under {@code /root}), else {@code
 * $XDG_STATE_HOME/agent-vm} or {@code ~/.local/state/agent-vm}. Each VM gets {@code run/<name>/},
 * removed when the VM is closed.
 */
public final class AgentVmPaths {
  private AgentVmPaths() {}

  public static Path stateRoot() {
    String env = System.getenv("AGENTVM_STATE_DIR");
    if (env != null && !env.isBlank()) {
      return Path.of(env);
    }
    if ("root".equals(System.getProperty("user.name"))) {
      return Path.of("/var/lib/agent-vm");
    }
    String xdg = System.getenv("XDG_STATE_HOME");
    return (xdg != null && !xdg.isBlank()
            ? Path.of(xdg)
            : Path.of(System.getProperty("user.home"), ".local", "state"))
        .resolve("agent-vm");
  }

  /** The runtime directory of one VM. */
  public static Path runDir(String vmName) {
    return stateRoot().resolve("run").resolve(vmName);
  }
}
