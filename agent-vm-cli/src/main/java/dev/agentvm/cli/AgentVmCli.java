package dev.agentvm.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code agent-vm}: the command line for the people who run agent-vm hosts. Every command has
 * {@code --help}; exit codes: 0 done, 1 it failed or found a failing check, 2 a usage error.
 */
@Command(
    name = "agent-vm",
    mixinStandardHelpOptions = true,
    versionProvider = AgentVmCli.Version.class,
    description = "Operate an agent-vm host: check it, see what runs, reach into sandboxes.",
    subcommands = {
      DoctorCommand.class,
      PsCommand.class,
      LogsCommand.class,
      ExecCommand.class,
      KillCommand.class,
      ReapCommand.class,
      PruneCommand.class,
      ImageCommand.class,
      CommandLine.HelpCommand.class
    })
public final class AgentVmCli implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  public static void main(String[] args) {
    // a look at the host must not change it: only `reap` reaps (itself, with counts)
    if (System.getProperty("agentvm.reap") == null) {
      System.setProperty("agentvm.reap", "off");
    }
    System.exit(commandLine().execute(args));
  }

  /** The command line with its subcommands, for {@link CommandLine#execute} (tests too). */
  public static CommandLine commandLine() {
    return new CommandLine(new AgentVmCli())
        .setCaseInsensitiveEnumValuesAllowed(true)
        // a failure is one line, not a stack trace (libvirt down, a VM gone meanwhile)
        .setExecutionExceptionHandler(
            (e, cl, parsed) -> {
              cl.getErr().println("agent-vm " + cl.getCommandName() + ": " + e.getMessage());
              cl.getErr().flush();
              return 1;
            });
  }

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  /** The version of the jar, from its manifest. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = AgentVmCli.class.getPackage().getImplementationVersion();
      return new String[] {"agent-vm " + (v == null ? "(development build)" : v)};
    }
  }
}
