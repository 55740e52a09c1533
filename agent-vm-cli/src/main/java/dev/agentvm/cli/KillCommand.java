package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.NoSuchVmException;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** Stops and removes one VM agent-vm made (a graceful power-off first, then destroy). */
@Command(
    name = "kill",
    mixinStandardHelpOptions = true,
    description =
        "Stop and remove a VM agent-vm made: power-off within the grace, then destroyed. A"
            + " sandbox's record is reaped by the next start of the library or `agent-vm reap`.")
final class KillCommand implements Callable<Integer> {
  @Mixin Options opts = new Options();
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Parameters(paramLabel = "VM", description = "the VM's name")
  String vm = "";

  @Override
  public Integer call() {
    try (LibvirtConnection conn = opts.connect()) {
      conn.attach(vm).close();
      spec.commandLine().getOut().println("killed " + vm);
      return 0;
    } catch (NoSuchVmException | IllegalArgumentException e) {
      spec.commandLine().getErr().println(e.getMessage());
      return 1;
    }
  }
}
