package dev.agentvm.cli;

import dev.agentvm.internal.AgentVmPaths;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** A VM's serial console, as the hypervisor wrote it. */
@Command(
    name = "logs",
    mixinStandardHelpOptions = true,
    description = "Print a VM's console log (a sandbox's VM has the sandbox's id).")
final class LogsCommand implements Callable<Integer> {
  @Parameters(paramLabel = "VM", description = "the VM's name")
  String vm = "";

  @CommandLine.Option(names = "--tail", description = "only the last N bytes (default: all)")
  long tail = -1;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** Where the console logs go: System.out, or a test's stream. */
  OutputStream sink = System.out;

  @Override
  public Integer call() throws IOException {
    if (!vm.matches("[A-Za-z0-9_.-]{1,128}") || vm.startsWith(".")) {
      spec.commandLine().getErr().println("not a VM name: " + vm);
      return 1;
    }
    Path log = AgentVmPaths.runDir(vm).resolve("console.log");
    if (!Files.isRegularFile(log)) {
      spec.commandLine().getErr().println("no console log for " + vm + " (" + log + ")");
      return 1;
    }
    try (InputStream in = Files.newInputStream(log)) {
      long size = Files.size(log);
      if (tail >= 0 && size > tail) {
        in.skipNBytes(size - tail);
      }
      in.transferTo(sink);
    }
    sink.flush();
    return 0;
  }
}
