package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxException;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/**
 * Runs one command in a paused sandbox: resumed for it, paused again after it, so the sandbox is
 * left as it was found. A running sandbox belongs to its process and is refused.
 */
@Command(
    name = "exec",
    mixinStandardHelpOptions = true,
    description =
        "Run a command in a paused sandbox (resumed for it, paused again after): exec SANDBOX --"
            + " CMD [ARG...]. Exits with the command's exit code.")
final class ExecCommand implements Callable<Integer> {
  @Mixin Options opts = new Options();
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Parameters(index = "0", paramLabel = "SANDBOX", description = "the sandbox's id")
  String id = "";

  @Parameters(index = "1..*", paramLabel = "CMD", description = "the command and its arguments")
  List<String> command = new ArrayList<>();

  @CommandLine.Option(
      names = "--timeout",
      description = "how long the command may run (default ${DEFAULT-VALUE})")
  Duration timeout = Duration.ofMinutes(10);

  /** Where the command's output goes: this process's, or a test's streams. */
  OutputStream stdout = System.out;

  OutputStream stderr = System.err;

  @Override
  public Integer call() throws IOException {
    if (command.isEmpty()) {
      throw new CommandLine.ParameterException(spec.commandLine(), "no command given after --");
    }
    try (LibvirtConnection conn = opts.connect();
        Sandboxes sandboxes = Sandboxes.open(conn)) {
      Sandbox sb = sandboxes.connect(id);
      try {
        ExecResult r =
            sb.exec(ExecRequest.command(command.toArray(String[]::new)).withTimeout(timeout));
        stdout.write(r.stdout());
        stdout.flush();
        stderr.write(r.stderr());
        stderr.flush();
        if (r.timedOut()) {
          spec.commandLine().getErr().println("timed out after " + timeout);
          return 124;
        }
        return r.signal() != 0 ? 128 + r.signal() : r.exitCode();
      } finally {
        sb.pause(); // as it was found
      }
    } catch (SandboxException e) {
      spec.commandLine().getErr().println(e.getMessage());
      return 1;
    }
  }
}
