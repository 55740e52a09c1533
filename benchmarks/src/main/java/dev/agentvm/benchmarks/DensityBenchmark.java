package dev.agentvm.benchmarks;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.storage.MemoryImage;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Host RAM per idle machine (issue 19): N cold-booted VMs against N clones of one memory image and
 * N paused sandboxes, all of the sandboxes' default shape; then what the kernel's same-page merging
 * (KSM) shares between the N clones and the CPU its scanner costs under TCG. KSM is switched on
 * only for the measurement, and the host's settings are put back afterwards.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.DensityBenchmark [n]
 * </pre>
 */
public final class DensityBenchmark {
  private static final Duration AGENT = Duration.ofMinutes(3);
  private static final Path KSM = Path.of("/sys/kernel/mm/ksm");
  private static final long PAGE = 4096;

  public static void main(String[] args) throws Exception {
    int n = args.length > 0 && !args[0].startsWith("--") ? Integer.parseInt(args[0]) : 3;
    boolean withKsm = java.util.Arrays.asList(args).contains("--ksm");
    MicroImage image = MicroImageBuilder.create().build();
    SandboxSpec spec =
        SandboxSpec.builder()
            .namePrefix("agentvm-bench-dens-")
            .idleTimeout(Duration.ZERO)
            .useWarmImage(false)
            .build();
    VMTemplate template =
        VMTemplate.builder(name("tmpl"))
            .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE))
            .resources(spec.resources())
            .build();
    Path work = Files.createTempDirectory(Path.of("/var/lib/agent-vm"), "agentvm-bench-dens-");
    List<VM> vms = new ArrayList<>();
    double cold;
    double clones;
    double shared = Double.NaN;
    double ksmCpu = Double.NaN;
    double paused;
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      try {
        for (int i = 0; i < n; i++) {
          VM vm = conn.define(template.copyAs(name("cold")).build());
          vms.add(vm);
          vm.start();
          vm.awaitAgent(AGENT);
        }
        Thread.sleep(2000);
        cold = Stats.qemuRssMb(vms);
      } finally {
        Stats.closeAll(vms);
      }
      try (MemoryImage img = MemoryImage.capture(conn, template, work.resolve("img"), AGENT)) {
        for (int i = 0; i < n; i++) {
          vms.add(img.restore(conn, name("clone"), Map.of(), AGENT));
        }
        Thread.sleep(2000);
        clones = Stats.qemuRssMb(vms);
        if (withKsm) {
          List<String> others =
              conn.domainNames().stream()
                  .filter(d -> !d.startsWith("agentvm-bench-dens-"))
                  .toList();
          if (!others.isEmpty() || !Files.isWritable(KSM.resolve("run"))) {
            System.err.println("KSM not measured: other domains run here " + others);
          } else {
            double[] k = ksm(Duration.ofSeconds(30));
            shared = k[0];
            ksmCpu = k[1];
          }
        }
      } finally {
        Stats.closeAll(vms);
      }
      try (Sandboxes sandboxes = Sandboxes.open(conn)) {
        List<Sandbox> all = new ArrayList<>();
        try {
          for (int i = 0; i < n; i++) {
            Sandbox sb = sandboxes.create(spec);
            all.add(sb);
            sb.pause();
          }
          // a paused sandbox has no QEMU process: what is left of its RAM is that of any QEMU
          double left = 0;
          for (Sandbox sb : all) {
            if (conn.domainNames().contains(sb.id())) {
              left += Stats.qemuRssMb(sb.id());
            }
          }
          paused = left;
        } finally {
          for (Sandbox sb : all) {
            sb.close();
          }
        }
      }
    } finally {
      try (var s = Files.walk(work)) {
        for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
    System.out.printf(
        "%nDensity benchmark, %d idle machines of %d MiB each (QEMU RSS summed, MB)%n",
        n, spec.resources().memoryMiB());
    System.out.printf("  cold-booted VMs                 %8.0f%n", cold);
    System.out.printf("  clones of one memory image      %8.0f%n", clones);
    System.out.printf("  paused sandboxes                %8.0f   (no QEMU process)%n", paused);
    if (!Double.isNaN(shared)) {
      System.out.printf(
          "  KSM over the clones, 30 s: %.0f MB shared, ksmd %.1f %% of one CPU%n", shared, ksmCpu);
    }
    Stats.ratio(
        n + " idle clones / " + n + " cold-booted VMs, host RAM",
        clones,
        cold,
        "MB",
        true,
        Double.NaN);
    if (!Double.isNaN(shared)) {
      Stats.ratio(
          "KSM: RAM merged across " + n + " idle clones in 30 s / their RSS",
          shared,
          clones,
          "MB",
          false,
          Double.NaN);
      Stats.ratio("KSM: ksmd CPU while merging (% of one CPU)", ksmCpu, 100, "%", true, Double.NaN);
    }
  }

  /**
   * Turns KSM on for {@code d}, then returns {MB merged, ksmd CPU in % of one CPU}, with the host's
   * own settings put back (and everything merged unmerged, if KSM was off).
   */
  private static double[] ksm(Duration d) throws Exception {
    String run = read("run");
    String toScan = read("pages_to_scan");
    long sharing0 = Long.parseLong(read("pages_sharing"));
    Thread restore = new Thread(() -> putBack(run, toScan), "ksm-settings-back");
    Runtime.getRuntime().addShutdownHook(restore);
    try {
      write("pages_to_scan", "1000");
      write("run", "1");
      long cpu0 = ksmdTicks();
      long t0 = System.nanoTime();
      Thread.sleep(d.toMillis());
      double secs = (System.nanoTime() - t0) / 1e9;
      double cpu = (ksmdTicks() - cpu0) / 100.0 / secs * 100; // USER_HZ 100
      double mb = (Long.parseLong(read("pages_sharing")) - sharing0) * PAGE / 1e6;
      return new double[] {mb, cpu};
    } finally {
      putBack(run, toScan);
      Runtime.getRuntime().removeShutdownHook(restore);
    }
  }

  /** The host's KSM settings as they were; what this run merged unmerged if KSM was off. */
  private static void putBack(String run, String toScan) {
    for (String[] kv :
        new String[][] {
          {"run", run.equals("0") ? "2" : run}, {"pages_to_scan", toScan}, {"run", run}
        }) {
      try {
        write(kv[0], kv[1]);
      } catch (Exception e) {
        System.err.println("cannot put KSM's " + kv[0] + " back to " + kv[1] + ": " + e);
      }
    }
  }

  private static long ksmdTicks() throws Exception {
    try (var procs = Files.list(Path.of("/proc"))) {
      for (Path p : procs.filter(p -> String.valueOf(p.getFileName()).matches("\\d+")).toList()) {
        try {
          if (Files.readString(p.resolve("comm")).trim().equals("ksmd")) {
            String stat = Files.readString(p.resolve("stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ", -1);
            return Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime + stime
          }
        } catch (java.io.IOException e) {
          // gone meanwhile
        }
      }
    }
    return 0;
  }

  private static String read(String f) throws Exception {
    return Files.readString(KSM.resolve(f), StandardCharsets.US_ASCII).trim();
  }

  private static void write(String f, String v) throws Exception {
    Files.writeString(KSM.resolve(f), v, StandardCharsets.US_ASCII);
  }

  private static String name(String what) {
    return "agentvm-bench-dens-" + what + "-" + UUID.randomUUID().toString().substring(0, 8);
  }
}
