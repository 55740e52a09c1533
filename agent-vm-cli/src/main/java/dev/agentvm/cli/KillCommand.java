package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.internal.ProcessOwners;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** Stops and removes one VM agent-vm made whose process is gone (or any, with --force). */
@Command(
    name = "kill",
    mixinStandardHelpOptions = true,
    description =
        "Stop and remove a VM agent-vm made (power-off within 10 s, then destroyed). A VM whose"
            + " process still runs is refused unless --force: that process then finds its VM gone."
            + " A killed sandbox's record goes with the next `agent-vm reap` once its process has"
            + " ended.")
final class KillCommand implements Callable<Integer> {
  @Mixin Options opts = new Options();
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Parameters(paramLabel = "VM", description = "the VM's name")
  String vm = "";

  @CommandLine.Option(names = "--force", description = "also when its owning process still runs")
  boolean force;

  @Override
  public Integer call() {
    try (LibvirtConnection conn = opts.connect()) {
      Optional<DomainHandle> d = conn.backend().lookup(vm);
      Optional<VMTemplate> t =
          d.isEmpty() ? Optional.empty() : d.get().description().templateIfAny();
      if (t.isEmpty()) {
        spec.commandLine().getErr().println(vm + ": no VM of agent-vm's by that name");
        return 1;
      }
      String owner = t.get().owner().orElse("");
      // another machine's process cannot be judged from here; nor, on a shared host, can an owner
      // that does not say which machine it is on
      boolean judgeable =
          ProcessOwners.isOfThisMachine(owner)
              && (opts.local() || ProcessOwners.namesThisMachine(owner));
      boolean live = !owner.isEmpty() && (!judgeable || ProcessOwners.isAlive(owner));
      if (live && !force) {
        spec.commandLine()
            .getErr()
            .println(
                vm
                    + ": its process "
                    + owner
                    + (judgeable ? " still runs" : " may still run (another machine)")
                    + "; stop it there, or use --force");
        return 1;
      }
      conn.attach(vm).close();
      spec.commandLine().getOut().println("killed " + vm);
      return 0;
    }
  }
}
