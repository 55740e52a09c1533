package dev.agentvm.benchmarks;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Sandbox costs, each beside its floor in one run: create (a cold boot) against pause and resume;
 * checkpoint and rollback; fork of 1 and of 4 against cold boots; a session of 50 small commands
 * against the raw EXEC round trip on a VM of the same template; host RAM and disk per running,
 * paused and forked sandbox.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.SandboxBenchmark [rounds]
 * </pre>
 */
public final class SandboxBenchmark {
  private static final Map<String, List<Double>> M = new LinkedHashMap<>();

  public static void main(String[] args) throws Exception {
    int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 3;
    MicroImage image = MicroImageBuilder.create().build();
    SandboxSpec spec =
        SandboxSpec.builder()
            .namePrefix("agentvm-bench-sbx-")
            .idleTimeout(Duration.ZERO)
            .useWarmImage(false)
            .build();
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn)) {
      Path root = sandboxes.root();
      for (int r = 1; r <= rounds; r++) {
        round(conn, sandboxes, spec, image, root);
        System.err.printf("round %d/%d done%n", r, rounds);
      }
    }
    System.out.printf("%nSandbox benchmark, %d rounds, medians in ms unless named%n", rounds);
    for (Map.Entry<String, List<Double>> e : M.entrySet()) {
      System.out.printf(
          "  %-58s %9.1f   (min %.1f, max %.1f, n=%d)%n",
          e.getKey(),
          Stats.median(e.getValue()),
          e.getValue().stream().mapToDouble(d -> d).min().orElse(0),
          e.getValue().stream().mapToDouble(d -> d).max().orElse(0),
          e.getValue().size());
    }
    double cold = med("create (cold boot to agent ready)");
    System.out.printf(
        "warm create / cold create:     %5.1f %%%n",
        100 * med("create from the warm image (restore, identity, agent ready)") / cold);
    double resume = med("resume (restore to agent ready)");
    System.out.printf(
        "resume / cold boot:            %5.1f %%  (goal: at most 15 %%)%n", 100 * resume / cold);
    System.out.printf(
        "fork of 4 / two cold boots:    %5.2f    (goal: below 1)%n", med("fork of 4") / (2 * cold));
    System.out.printf(
        "session command p50 / raw EXEC p50: %5.2f   p99 / raw p99: %5.2f%n",
        med("session of 50 commands: p50") / med("raw EXEC on a VM of the same template: p50"),
        med("session of 50 commands: p99") / med("raw EXEC on a VM of the same template: p99"));
    double floor =
        med("floor: QEMU start outside libvirt -> QMP ready")
            + med("floor: paused memory image read from the page cache");
    Stats.ratio("sandbox resume / cold create", resume, cold, "ms", true, 0.15);
    Stats.ratio(
        "sandbox resume / restore floor (QEMU start + image read)", resume, floor, "ms", true, 3);
    Stats.ratio(
        "sandbox pause / restore floor",
        med("pause (save memory, VM removed)"),
        floor,
        "ms",
        true,
        Double.NaN);
    Stats.ratio("sandbox fork of 4 / two cold creates", med("fork of 4"), 2 * cold, "ms", true, 1);
    Stats.ratio(
        "sandbox session command p50 / raw EXEC p50",
        med("session of 50 commands: p50"),
        med("raw EXEC on a VM of the same template: p50"),
        "ms",
        true,
        Double.NaN);
    System.out.printf(
        "paused sandbox host RAM: %.0f MB (running: %.0f MB)%n",
        med("host RAM, paused sandbox (MB)"), med("host RAM (QEMU RSS), running sandbox (MB)"));
  }

  private static void round(
      LibvirtConnection conn, Sandboxes sandboxes, SandboxSpec spec, MicroImage image, Path root)
      throws Exception {
    long t = System.nanoTime();
    try (Sandbox sb = sandboxes.create(spec)) {
      add("create (cold boot to agent ready)", t);
      Path dir = root.resolve(sb.id());
      add("host RAM (QEMU RSS), running sandbox (MB)", Stats.qemuRssMb(sb.id()));
      // a fresh agent's first commands load its classes (interpreted, under TCG): reported both
      // with them (what a session on a cold sandbox pays) and without, like the raw floor
      List<Double> lat = new ArrayList<>();
      for (int i = 0; i < 55; i++) {
        long c = System.nanoTime();
        sb.exec("true");
        lat.add(Stats.ms(System.nanoTime() - c));
      }
      List<Double> steady = lat.subList(5, lat.size());
      M.computeIfAbsent("session of 50 commands: p50", k -> new ArrayList<>())
          .add(Stats.pct(steady, 50));
      M.computeIfAbsent("session of 50 commands: p99", k -> new ArrayList<>())
          .add(Stats.pct(steady, 99));
      M.computeIfAbsent("session, first 5 commands of a cold sandbox: max", k -> new ArrayList<>())
          .add(java.util.Collections.max(lat.subList(0, 5)));
      sb.run("dd if=/dev/urandom of=/workspace/data bs=1M count=8 2>/dev/null; sync");

      t = System.nanoTime();
      sb.pause();
      add("pause (save memory, VM removed)", t);
      add("host RAM, paused sandbox (MB)", conn.domainNames().contains(sb.id()) ? -1.0 : 0.0);
      add("disk, paused sandbox: memory image (MB)", sizeMb(dir.resolve("paused.save")));
      add("disk, paused sandbox: workspace top overlay (MB)", sizeMb(dir.resolve("disk.qcow2")));
      // the floor of any restore here: QEMU's own start, the memory image from the page cache
      add(
          "floor: QEMU start outside libvirt -> QMP ready",
          RestoreFloor.qemuStartMs(spec.resources().memoryMiB()));
      add(
          "floor: paused memory image read from the page cache",
          RestoreFloor.pageCacheReadMs(dir.resolve("paused.save")));
      t = System.nanoTime();
      sb.resume();
      add("resume (restore to agent ready)", t);

      t = System.nanoTime();
      sb.checkpoint("a");
      add("checkpoint", t);
      sb.run("echo changed > /workspace/x");
      t = System.nanoTime();
      sb.rollback("a");
      add("rollback", t);

      for (int n : new int[] {1, 4}) {
        t = System.nanoTime();
        List<Sandbox> copies = sb.fork(n);
        add("fork of " + n, t);
        if (n == 4) {
          add("host RAM (QEMU RSS), one forked copy (MB)", Stats.qemuRssMb(copies.get(0).id()));
          add(
              "disk, one forked copy: its own overlay (MB)",
              sizeMb(root.resolve(copies.get(0).id()).resolve("disk.qcow2")));
        }
        for (Sandbox c : copies) {
          c.close();
        }
      }
    }
    rawExec(conn, image);
    SandboxSpec warm = spec.toBuilder().useWarmImage(true).build();
    sandboxes.warmUp(warm);
    t = System.nanoTime();
    try (Sandbox sb = sandboxes.create(warm)) {
      add("create from the warm image (restore, identity, agent ready)", t);
      long c = System.nanoTime();
      sb.exec("true");
      add("first command of a sandbox from the warm image", c);
    }
  }

  /** The floor of a command: EXEC straight on the agent client of a VM of the same template. */
  private static void rawExec(LibvirtConnection conn, MicroImage image) throws IOException {
    VMTemplate t =
        VMTemplate.builder("agentvm-bench-raw-" + UUID.randomUUID().toString().substring(0, 8))
            .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE))
            .build();
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      List<Double> lat = new ArrayList<>();
      for (int i = 0; i < 55; i++) {
        long c = System.nanoTime();
        agent.exec(ExecRequest.command("true").withTimeout(Duration.ofSeconds(30)));
        if (i >= 5) { // the sandbox's first commands ran after its own warm-up HELLO too
          lat.add(Stats.ms(System.nanoTime() - c));
        }
      }
      M.computeIfAbsent("raw EXEC on a VM of the same template: p50", k -> new ArrayList<>())
          .add(Stats.pct(lat, 50));
      M.computeIfAbsent("raw EXEC on a VM of the same template: p99", k -> new ArrayList<>())
          .add(Stats.pct(lat, 99));
    }
  }

  private static void add(String key, long startNanos) {
    M.computeIfAbsent(key, k -> new ArrayList<>()).add(Stats.ms(System.nanoTime() - startNanos));
  }

  private static void add(String key, double value) {
    M.computeIfAbsent(key, k -> new ArrayList<>()).add(value);
  }

  private static double med(String key) {
    return Stats.median(Stats.samples(M, key));
  }

  /** Allocated size (what the file really takes on disk), in MB; -1 if it is not there. */
  private static double sizeMb(Path f) {
    return Files.exists(f) ? Stats.allocated(f) / 1e6 : -1;
  }
}
