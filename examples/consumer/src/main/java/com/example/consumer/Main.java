package com.example.consumer;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;

/** What a user's application does first: a sandbox, a command, its output. */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    String prefix = args.length > 0 ? args[0] : SandboxSpec.DEFAULT_PREFIX;
    int code;
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn);
        Sandbox sb = sandboxes.create(SandboxSpec.defaults().withNamePrefix(prefix))) {
      ExecResult r = sb.exec("echo", "hello from a consumer of agent-vm");
      System.out.print(r.stdoutText());
      code = r.exitCode();
    }
    System.exit(code);
  }
}
