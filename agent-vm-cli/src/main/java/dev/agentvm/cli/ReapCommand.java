package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.Reaper;
import dev.agentvm.core.VM;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/**
 * Removes what dead processes left: their VMs (with runtime directories), the other resources the
 * library's reapers know (workspaces, network reservations), and sandboxes whose process died or
 * whose retention ended; prints the counts.
 */
@Command(
    name = "reap",
    mixinStandardHelpOptions = true,
    description =
        "Remove what dead processes left (VMs, runtime directories, workspaces, network"
            + " reservations, sandboxes) and paused sandboxes whose retention ended.")
final class ReapCommand implements Callable<Integer> {
  @Mixin Options opts = new Options();
  @Mixin SandboxRoot sandboxRoot = new SandboxRoot();

  @CommandLine.Option(names = "--json", description = "print JSON instead of text")
  boolean json;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() {
    Reaper.Report r;
    int sandboxes = 0;
    List<String> failures;
    try (LibvirtConnection conn = opts.connect()) {
      r = Reaper.reapOrphans(conn, VM.DEFAULT_SHUTDOWN_GRACE);
      failures = new ArrayList<>(r.failures());
      Path root = sandboxRoot.of(conn);
      // a directory never used holds nothing to reap: not made here (nor the host's pool)
      if (Files.isDirectory(root)) {
        try (Sandboxes s = Sandboxes.open(conn, root)) {
          sandboxes = s.reapedAtOpen();
        } catch (RuntimeException e) {
          failures.add("sandboxes under " + root + ": " + e.getMessage());
        }
      }
    }
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("vms", r.removed());
      m.put("orphanedVms", r.orphans());
      m.put("sandboxes", sandboxes);
      m.put("others", r.others());
      m.put("failures", failures);
      Options.printJson(out, m);
    } else {
      out.printf(
          "VMs: %d orphaned, %d removed (%d powered off, %d destroyed)%n",
          r.orphans(), r.removed(), r.stoppedGracefully(), r.stoppedForcibly());
      out.printf("sandboxes: %d removed%n", sandboxes);
      r.others().forEach((kind, n) -> out.printf("%s: %d removed%n", kind, n));
      failures.forEach(f -> out.println("FAILED: " + f));
      out.flush();
    }
    return failures.isEmpty() ? 0 : 1;
  }
}
