package dev.agentvm.benchmarks;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.stream.Collectors;

/**
 * Records the classes, lambda proxies and lambda forms the guest agent loads while it serves each
 * kind of request, in a real guest ({@code -XX:DumpLoadedClassList}), into the class list that
 * {@code MicroImageBuilder} adds to the guest runtime's CDS archive. Run it when the agent changes
 * much (a class it misses is only loaded in the guest as before, never wrong):
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.AgentClassList \
 *     agent-vm-image/src/main/resources/dev/agentvm/image/agent.classlist
 * </pre>
 *
 * <p>Not recorded: egress and 9p mounts, which need a proxy or a share; their classes load in the
 * guest when first used.
 */
public final class AgentClassList {
  private static final Duration CALL = Duration.ofSeconds(30);
  private static final String LIST = "/tmp/agent.classlist";

  private AgentClassList() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: AgentClassList <output file>");
      System.exit(2);
    }
    Path out = Path.of(args[0]);
    MicroImage image = MicroImageBuilder.create().build();
    Set<String> lines = new LinkedHashSet<>();
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      // with the agent's native library, and without it (an image built where there is no cc)
      for (String opts : List.of("", ",-Dagentvm.guest.native=")) {
        lines.addAll(record(conn, image, opts));
      }
    }
    Files.writeString(
        out,
        "# recorded in a guest by dev.agentvm.benchmarks.AgentClassList on JDK "
            + Runtime.version().feature()
            + ": do not edit\n"
            + lines.stream().collect(Collectors.joining("\n", "", "\n")),
        StandardCharsets.UTF_8);
    System.out.printf("%d entries written to %s%n", lines.size(), out);
  }

  /** The list of one guest's agent (its comment header left out) after the workload. */
  private static List<String> record(LibvirtConnection conn, MicroImage image, String moreOpts)
      throws IOException {
    BootSource boot =
        new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE)
            .withExtraCmdline("agentvm.java_opts=-XX:DumpLoadedClassList=" + LIST + moreOpts);
    VMTemplate t =
        VMTemplate.builder("agentvm-bench-" + UUID.randomUUID().toString().substring(0, 8))
            .boot(boot)
            .build();
    Path local = Files.createTempFile("agentvm-bench-classlist", ".bin");
    Path memory = Files.createTempFile("agentvm-bench-classlist", ".save");
    VM vm = conn.define(t);
    try {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(3));
      workload(agent, local);
      // what a restored agent runs first (the host gone and back, the clock stepped): a sandbox's
      // resume waits for it
      vm.saveMemory(memory);
      vm.close();
      vm = conn.restore(memory, t);
      agent = vm.awaitAgent(Duration.ofMinutes(3));
      workload(agent, local);
      agent.getFile(LIST, local, CALL);
      vm.shutdown(Duration.ZERO);
      return Files.readAllLines(local, StandardCharsets.UTF_8).stream()
          .filter(l -> !l.isBlank() && !l.startsWith("#"))
          .toList();
    } finally {
      vm.close();
      Files.deleteIfExists(local);
      Files.deleteIfExists(memory);
      Path key = memory.toAbsolutePath().normalize();
      Files.deleteIfExists(key.resolveSibling(key.getFileName() + ".lock")); // restore's
    }
  }

  /** One request of each kind a sandbox or an executor sends, most of them twice. */
  private static void workload(AgentClient agent, Path local) throws IOException {
    for (int i = 0; i < 2; i++) {
      agent.ping(CALL);
      agent.status(CALL);
      agent.exec(ExecRequest.command("true"));
      agent.exec(
          ExecRequest.script("cat; echo err >&2; exit 3", "sh")
              .withStdin("in".getBytes(StandardCharsets.UTF_8))
              .withEnv(java.util.Map.of("A", "b"))
              .withCwd("/tmp")
              .withTimeout(CALL));
      agent.mkdir("/tmp/w/a", true, CALL);
      AgentClient.Watch watch = agent.watch("/tmp/w", e -> {}, CALL);
      Files.write(local, new byte[256 * 1024]);
      agent.putFile(local, "/tmp/w/f", 0644, CALL);
      agent.getFile("/tmp/w/f", local, CALL);
      agent.stat("/tmp/w/f", CALL);
      agent.list("/tmp/w", 100, CALL);
      agent.rename("/tmp/w/f", "/tmp/w/g", CALL);
      agent.stopWatch(watch, CALL);
      agent.remove("/tmp/w", true, CALL);
      AgentClient.Background bg =
          agent.spawn(ExecRequest.script("cat >/dev/null", "sh"), OutputListener.NONE, CALL);
      agent.writeInput(bg.handle(), "x".getBytes(StandardCharsets.UTF_8), CALL);
      agent.backgroundProcesses(CALL);
      agent.closeInput(bg.handle(), CALL);
      bg.exit().join();
      AgentClient.Background sleeper =
          agent.spawn(ExecRequest.command("sleep", "60"), OutputListener.NONE, CALL);
      agent.killBackground(sleeper.handle(), CALL);
      sleeper.exit().join();
    }
  }
}
