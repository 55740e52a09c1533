package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxException;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.internal.ShutdownHooks;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/**
 * Runs one command in a paused sandbox: resumed for it, paused again after it (also on Ctrl-C).
 * Exit codes: the command's own; 124 it timed out; 125 the sandbox could not be used or paused
 * again; 126 the command could not be run; 128+N killed by signal N.
 */
@Command(
    name = "exec",
    mixinStandardHelpOptions = true,
    description = {
      "Run a command in a paused sandbox (resumed for it, paused again after, also on Ctrl-C):"
          + " exec SANDBOX -- CMD [ARG...]. Pausing again starts its paused retention anew.",
      "Exit codes: the command's own; 124 timed out; 125 the sandbox could not be used or paused"
          + " again; 126 the command could not be run; 128+N killed by signal N."
    })
final class ExecCommand implements Callable<Integer> {
  static final int SANDBOX_FAILED = 125;
  static final int NOT_RUN = 126;

  @Mixin Options opts = new Options();
  @Mixin SandboxRoot sandboxRoot = new SandboxRoot();
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
    PrintWriter err = spec.commandLine().getErr();
    try (LibvirtConnection conn = opts.connect();
        Sandboxes sandboxes = Sandboxes.open(conn, sandboxRoot.of(conn))) {
      Sandbox sb;
      try {
        sb = sandboxes.connect(id);
      } catch (SandboxException e) {
        err.println(e.getMessage());
        return SANDBOX_FAILED;
      }
      // Ctrl-C: paused before the connection's own hook would stop the VM (newest hooks first)
      ShutdownHooks.Registration hook = ShutdownHooks.register("exec in " + id, sb::pause);
      try {
        int code = run(sb, err);
        if (!pauseAgain(sb, err)) {
          return SANDBOX_FAILED;
        }
        return code;
      } finally {
        hook.close();
      }
    }
  }

  private int run(Sandbox sb, PrintWriter err) throws IOException {
    ExecResult r;
    try {
      r = sb.exec(ExecRequest.command(command.toArray(String[]::new)).withTimeout(timeout));
    } catch (SandboxException e) {
      err.println(e.getMessage());
      return SANDBOX_FAILED;
    } catch (IOException e) {
      err.println("cannot run " + command.get(0) + ": " + e.getMessage());
      return NOT_RUN;
    }
    stdout.write(r.stdout());
    stdout.flush();
    stderr.write(r.stderr());
    stderr.flush();
    if (r.stdoutTruncated() || r.stderrTruncated()) {
      err.println("(output cut at " + ExecRequest.DEFAULT_OUTPUT_LIMIT + " bytes per stream)");
    }
    if (r.timedOut()) {
      err.println("timed out after " + timeout);
      return 124;
    }
    return r.signal() != 0 ? 128 + r.signal() : r.exitCode();
  }

  /** Pauses the sandbox again, trying twice; false (and why) when it could not be. */
  private boolean pauseAgain(Sandbox sb, PrintWriter err) {
    String last = "";
    for (int i = 0; i < 2; i++) {
      try {
        sb.pause();
        return true;
      } catch (RuntimeException e) {
        last = String.valueOf(e.getMessage());
      }
    }
    err.println(
        "the sandbox "
            + id
            + " could not be paused again ("
            + last
            + "): it ends with this command, its state is lost");
    return false;
  }
}
