package dev.agentvm.execution.sandbox;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.TestVms;
import java.nio.charset.StandardCharsets;

/**
 * Run in a child JVM by SandboxIT: makes two sandboxes labelled {@code run=<arg>}, each with a
 * counter loop running in the guest; pauses the first, leaves the second running, prints {@code
 * PAUSED <id>} and {@code RUNNING <id>}, then waits to be killed.
 */
public final class SandboxOwnerMaker {
  public static void main(String[] args) throws Exception {
    LibvirtConnection conn = LibvirtConnection.open();
    Sandboxes sandboxes = Sandboxes.open(conn);
    SandboxSpec spec =
        SandboxSpec.defaults().withNamePrefix(TestVms.PREFIX + "sbx-").withLabel("run", args[0]);
    Sandbox paused = sandboxes.create(spec);
    Sandbox running = sandboxes.create(spec);
    for (Sandbox sb : new Sandbox[] {paused, running}) {
      sb.files().write("/workspace/note.txt", "written before\n".getBytes(StandardCharsets.UTF_8));
      sb.run(SandboxIT.COUNTER_LOOP);
    }
    Thread.sleep(1500);
    paused.pause();
    System.out.println("PAUSED " + paused.id());
    System.out.println("RUNNING " + running.id());
    System.out.flush();
    Thread.sleep(Long.MAX_VALUE);
  }
}
