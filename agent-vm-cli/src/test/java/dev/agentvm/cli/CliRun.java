package dev.agentvm.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine;

/** One run of the command line in this JVM; the exec and logs commands' output captured too. */
final class CliRun {
  final int code;
  final String out;
  final String err;
  final String stdout;

  CliRun(String... args) {
    CommandLine cl = AgentVmCli.commandLine();
    StringWriter o = new StringWriter();
    StringWriter e = new StringWriter();
    cl.setOut(new PrintWriter(o, true));
    cl.setErr(new PrintWriter(e, true));
    ByteArrayOutputStream raw = new ByteArrayOutputStream();
    ExecCommand exec = cl.getSubcommands().get("exec").getCommand();
    exec.stdout = raw;
    exec.stderr = raw;
    LogsCommand logs = cl.getSubcommands().get("logs").getCommand();
    logs.sink = raw;
    code = cl.execute(args);
    out = o.toString();
    err = e.toString();
    stdout = raw.toString(StandardCharsets.UTF_8);
  }
}
