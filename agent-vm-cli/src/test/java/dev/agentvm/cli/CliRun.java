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
    code = execute(cl, args);
    out = o.toString();
    err = e.toString();
    stdout = raw.toString(StandardCharsets.UTF_8);
  }

  /**
   * Runs {@code cl} as {@link AgentVmCli#main} would: with the reaping that opening a connection
   * does turned off (a look at a host must not change it, and a reap here would also race the other
   * module's VM tests), unless a test set it.
   */
  static int execute(CommandLine cl, String... args) {
    String before = System.getProperty("agentvm.reap");
    if (before == null) {
      System.setProperty("agentvm.reap", "off");
    }
    try {
      return cl.execute(args);
    } finally {
      if (before == null) {
        System.clearProperty("agentvm.reap");
      }
    }
  }
}
