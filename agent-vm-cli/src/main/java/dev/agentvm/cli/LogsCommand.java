package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.internal.AgentVmPaths;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** A VM's serial console, as the hypervisor wrote it. */
@Command(
    name = "logs",
    mixinStandardHelpOptions = true,
    description =
        "Print a VM's console log (a sandbox's VM has the sandbox's id): from the run directory its"
            + " domain names, else this user's.")
final class LogsCommand implements Callable<Integer> {
  @Mixin Options opts = new Options();

  @Parameters(paramLabel = "VM", description = "the VM's name")
  String vm = "";

  @CommandLine.Option(names = "--tail", description = "only the last N bytes (default: all)")
  long tail = -1;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** Where the console logs go: System.out, or a test's stream. */
  OutputStream sink = System.out;

  @Override
  public Integer call() throws IOException {
    if (!vm.matches("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")) {
      spec.commandLine().getErr().println("not a VM name: " + vm);
      return 1;
    }
    Path log = runDir().resolve("console.log");
    if (!Files.isRegularFile(log, LinkOption.NOFOLLOW_LINKS)) {
      spec.commandLine().getErr().println("no console log for " + vm + " (" + log + ")");
      return 1;
    }
    // not through a link: a run directory QEMU can write to must not make this print another file
    try (InputStream in = Files.newInputStream(log, LinkOption.NOFOLLOW_LINKS)) {
      long size = Files.size(log);
      if (tail >= 0 && size > tail) {
        in.skipNBytes(size - tail);
      }
      in.transferTo(sink);
    }
    sink.flush();
    return 0;
  }

  /** The run directory the domain names, if libvirt answers and knows it; else this user's. */
  private Path runDir() {
    try (LibvirtConnection conn = opts.connect()) {
      return conn.backend()
          .lookup(vm)
          .flatMap(d -> d.description().templateIfAny())
          .map(VMTemplate::runDir)
          .orElse(AgentVmPaths.runDir(vm));
    } catch (RuntimeException e) {
      return AgentVmPaths.runDir(vm);
    }
  }
}
