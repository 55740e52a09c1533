package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.execution.sandbox.SandboxInfo;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.internal.ProcessOwners;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** The VMs agent-vm made on a host and the sandboxes of a record directory; changes nothing. */
@Command(
    name = "ps",
    mixinStandardHelpOptions = true,
    description =
        "List agent-vm's VMs on the host of --uri and the sandboxes recorded in --sandboxes"
            + " (owner, state, age, memory, labels).")
final class PsCommand implements Callable<Integer> {
  @Mixin Options opts = new Options();
  @Mixin SandboxRoot sandboxes = new SandboxRoot();

  @CommandLine.Option(names = "--json", description = "print JSON instead of text")
  boolean json;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** ownerAlive: "yes", "no", or "unknown" for a VM whose owner is a process on another machine. */
  record Vm(String name, String state, String owner, String ownerAlive, int memoryMiB) {}

  record Box(
      String id,
      String state,
      String owner,
      boolean ownerAlive,
      String created,
      long ageSeconds,
      Map<String, String> labels,
      String retainUntil,
      List<String> checkpoints) {}

  @Override
  public Integer call() {
    List<Vm> vms = new ArrayList<>();
    Path root;
    try (LibvirtConnection conn = opts.connect()) {
      root = sandboxes.of(conn);
      for (String name : conn.domainNames()) {
        try {
          Optional<DomainHandle> d = conn.backend().lookup(name);
          Optional<VMTemplate> t =
              d.isEmpty() ? Optional.empty() : d.get().description().templateIfAny();
          if (d.isEmpty() || t.isEmpty()) {
            continue; // gone meanwhile, or not agent-vm's
          }
          String owner = t.get().owner().orElse("");
          vms.add(
              new Vm(
                  name,
                  d.get().status().kind().name().toLowerCase(java.util.Locale.ROOT),
                  owner,
                  alive(owner),
                  t.get().resources().memoryMiB()));
        } catch (RuntimeException e) {
          // it went away between the listing and the look (a sandbox pausing): not listed
        }
      }
    }
    Instant now = Instant.now();
    List<Box> boxes = new ArrayList<>();
    for (SandboxInfo i : Sandboxes.inspect(root)) {
      boxes.add(
          new Box(
              i.id(),
              i.state().name().toLowerCase(java.util.Locale.ROOT),
              i.owner(),
              // records are this machine's (the client's), also for sandboxes on a remote host
              !i.owner().isEmpty() && ProcessOwners.isAlive(i.owner()),
              i.created().toString(),
              Duration.between(i.created(), now).toSeconds(),
              i.labels(),
              i.retainUntil().map(Instant::toString).orElse(""),
              i.checkpoints()));
    }
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      Map<String, Object> all = new LinkedHashMap<>();
      all.put("vms", vms);
      all.put("sandboxes", boxes);
      Options.printJson(out, all);
      return 0;
    }
    out.printf("%-44s %-9s %7s  %s%n", "VM", "STATE", "MEMORY", "OWNER");
    for (Vm v : vms) {
      out.printf(
          "%-44s %-9s %4d MiB  %s%n",
          v.name(),
          v.state(),
          v.memoryMiB(),
          v.owner().isEmpty()
              ? "-"
              : v.owner() + (v.ownerAlive().equals("yes") ? "" : " (" + v.ownerAlive() + ")"));
    }
    out.println();
    out.printf("%-44s %-8s %8s  %-30s %s%n", "SANDBOX", "STATE", "AGE", "OWNER", "LABELS");
    for (Box b : boxes) {
      out.printf(
          "%-44s %-8s %8s  %-30s %s%n",
          b.id(),
          b.state(),
          age(b.ageSeconds()),
          b.owner().isEmpty() ? "-" : b.owner() + (b.ownerAlive() ? "" : " (dead)"),
          b.labels());
    }
    out.flush();
    return 0;
  }

  private String alive(String owner) {
    if (owner.isEmpty()) {
      return "no";
    }
    if (!opts.local() && !ProcessOwners.namesThisMachine(owner)) {
      return "unknown"; // a client on another machine: its process ids mean nothing here
    }
    return ProcessOwners.isAlive(owner) ? "yes" : "no";
  }

  static String age(long seconds) {
    if (seconds < 120) {
      return seconds + "s";
    }
    if (seconds < 7200) {
      return seconds / 60 + "m";
    }
    if (seconds < 172_800) {
      return seconds / 3600 + "h";
    }
    return seconds / 86_400 + "d";
  }

  /** Bytes under {@code dir} (links not followed). */
  static long size(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile)
          .mapToLong(
              p -> {
                try {
                  return Files.size(p);
                } catch (IOException e) {
                  return 0;
                }
              })
          .sum();
    } catch (IOException | UncheckedIOException e) {
      return 0;
    }
  }
}
