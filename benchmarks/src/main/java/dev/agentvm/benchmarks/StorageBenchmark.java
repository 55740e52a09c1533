package dev.agentvm.benchmarks;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.storage.FilesystemShare;
import dev.agentvm.storage.MemoryImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;

/**
 * Storage costs, each measured side by side in one run:
 *
 * <ul>
 *   <li>cold boot to agent-ready against restoring a clone from a memory image to agent-ready
 *       (rounds interleaved), and the identity refresh on top;
 *   <li>save and restore time, and image size, at 256 MiB, 512 MiB and 1 GiB of guest memory;
 *   <li>copying one file into the guest over virtio-9p against PUT_FILE over the agent channel, and
 *       out again against GET_FILE;
 *   <li>host memory (QEMU's RSS) of idle clones against idle cold-booted VMs.
 * </ul>
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.StorageBenchmark [rounds]
 * </pre>
 */
public final class StorageBenchmark {
  private static final Duration AGENT = Duration.ofMinutes(2);

  public static void main(String[] args) throws Exception {
    int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 5;
    MicroImage image = MicroImageBuilder.create().build();
    BootSource boot = new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE);
    Path work = Files.createTempDirectory(Path.of("/var/lib/agent-vm"), "bench-storage-");
    Files.setPosixFilePermissions(
        work, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
    Map<String, List<Double>> m = new LinkedHashMap<>();
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      coldVersusRestore(conn, boot, work, rounds, m);
      memorySizes(conn, boot, work, m);
      shareVersusProtocol(conn, boot, work, m);
      rss(conn, boot, work, m);
    } finally {
      deleteTree(work);
    }
    System.out.printf("%nStorage benchmark, %d rounds, medians in ms unless named%n", rounds);
    for (Map.Entry<String, List<Double>> e : m.entrySet()) {
      System.out.printf(
          "  %-62s %9.1f   (min %.1f, max %.1f, n=%d)%n",
          e.getKey(),
          Stats.median(e.getValue()),
          e.getValue().stream().mapToDouble(d -> d).min().orElse(0),
          e.getValue().stream().mapToDouble(d -> d).max().orElse(0),
          e.getValue().size());
    }
    double cold = Stats.median(Stats.samples(m, "cold boot: start -> agent HELLO"));
    double restore = Stats.median(Stats.samples(m, "clone: restore -> agent HELLO"));
    double ready =
        Stats.median(Stats.samples(m, "clone: restore -> identity refreshed (ready for work)"));
    System.out.printf(
        "ratio cold boot / restore to HELLO:          %.1fx (goal: 20x)%n", cold / restore);
    System.out.printf("ratio cold boot / restore to ready for work: %.1fx%n", cold / ready);
    double floor =
        Stats.median(Stats.samples(m, "floor: QEMU start outside libvirt -> QMP ready"))
            + Stats.median(Stats.samples(m, "floor: memory image read from the page cache"));
    Stats.ratio(
        "clone restore to ready for work / restore floor (QEMU start + image read)",
        ready,
        floor,
        "ms",
        true,
        3);
    Stats.ratio("clone restore to agent HELLO / restore floor", restore, floor, "ms", true, 3);
    System.out.printf(
        "9p / PUT_FILE throughput in: %.2f   out (9p / GET_FILE): %.2f%n",
        Stats.median(Stats.samples(m, "into the guest, virtio-9p (MB/s)"))
            / Stats.median(Stats.samples(m, "into the guest, PUT_FILE (MB/s)")),
        Stats.median(Stats.samples(m, "out of the guest, virtio-9p (MB/s)"))
            / Stats.median(Stats.samples(m, "out of the guest, GET_FILE (MB/s)")));
  }

  private static String name(String what) {
    return "agentvm-bench-" + what + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  private static void add(Map<String, List<Double>> m, String k, double v) {
    m.computeIfAbsent(k, x -> new ArrayList<>()).add(v);
  }

  // the VMs in the try blocks are only there to be timed and closed
  @SuppressWarnings("try")
  private static void coldVersusRestore(
      LibvirtConnection conn, BootSource boot, Path work, int rounds, Map<String, List<Double>> m)
      throws Exception {
    VMTemplate template = VMTemplate.builder(name("tmpl")).boot(boot).build();
    try (MemoryImage img = MemoryImage.capture(conn, template, work.resolve("img"), AGENT)) {
      add(m, "memory image: capture (boot + save)", (double) img.captureTime().toMillis());
      for (int r = 0; r < rounds; r++) {
        VMTemplate t = template.copyAs(name("cold")).build();
        try (VM vm = conn.define(t)) {
          long t0 = System.nanoTime();
          vm.start();
          vm.awaitAgent(AGENT);
          add(m, "cold boot: start -> agent HELLO", Stats.ms(System.nanoTime() - t0));
        }
        long t0 = System.nanoTime();
        VMTemplate c = template.copyAs(name("clone")).build();
        try (VM vm = conn.restore(img.file(), c)) {
          vm.awaitAgent(AGENT);
          add(m, "clone: restore -> agent HELLO", Stats.ms(System.nanoTime() - t0));
        }
        t0 = System.nanoTime();
        try (VM vm = img.restore(conn, name("clone"), Map.of(), AGENT)) {
          add(
              m,
              "clone: restore -> identity refreshed (ready for work)",
              Stats.ms(System.nanoTime() - t0));
        }
        add(
            m,
            "floor: QEMU start outside libvirt -> QMP ready",
            RestoreFloor.qemuStartMs(template.resources().memoryMiB()));
        add(
            m,
            "floor: memory image read from the page cache",
            RestoreFloor.pageCacheReadMs(img.file()));
        System.err.printf("cold/restore round %d/%d%n", r + 1, rounds);
      }
    }
  }

  private static void memorySizes(
      LibvirtConnection conn, BootSource boot, Path work, Map<String, List<Double>> m)
      throws Exception {
    for (int mib : new int[] {256, 512, 1024}) {
      VMTemplate t =
          VMTemplate.builder(name("mem" + mib))
              .boot(boot)
              .resources(new ResourceProfile(1, mib))
              .build();
      Path file = work.resolve("mem" + mib + ".save");
      try (VM vm = conn.define(t)) {
        vm.start();
        vm.awaitAgent(AGENT);
        long t0 = System.nanoTime();
        vm.saveMemory(file);
        add(m, "save, " + mib + " MiB guest", Stats.ms(System.nanoTime() - t0));
        add(m, "save image size, " + mib + " MiB guest (MB)", Files.size(file) / 1e6);
        t0 = System.nanoTime();
        try (VM back = conn.restore(file, t.copyAs(name("memback" + mib)).build())) {
          back.awaitAgent(AGENT);
          add(m, "restore -> HELLO, " + mib + " MiB guest", Stats.ms(System.nanoTime() - t0));
        }
      } finally {
        Files.deleteIfExists(file);
        Files.deleteIfExists(file.resolveSibling(file.getFileName() + ".lock"));
      }
    }
  }

  private static void shareVersusProtocol(
      LibvirtConnection conn, BootSource boot, Path work, Map<String, List<Double>> m)
      throws Exception {
    int size = 32 << 20;
    byte[] data = new byte[size];
    new Random(1).nextBytes(data);
    Path local = work.resolve("payload.bin");
    Files.write(local, data);
    String n = name("share");
    try (FilesystemShare ws = FilesystemShare.create(work.resolve("ws"), n)) {
      ws.addInput("payload.bin", data);
      VMTemplate.Builder b = VMTemplate.builder(n).boot(boot);
      ws.shares().forEach(b::share);
      try (VM vm = conn.define(b.build())) {
        vm.start();
        AgentClient a = vm.awaitAgent(AGENT);
        ws.mount(a, Duration.ofSeconds(30));
        for (int r = 0; r < 3; r++) {
          long t0 = System.nanoTime();
          sh(a, "cat /workspace/input/payload.bin > /tmp/via9p && rm /tmp/via9p");
          add(m, "into the guest, virtio-9p (MB/s)", size / 1e6 / ((System.nanoTime() - t0) / 1e9));
          t0 = System.nanoTime();
          a.putFile(local, "/tmp/viaput", 0644, Duration.ofMinutes(2));
          add(m, "into the guest, PUT_FILE (MB/s)", size / 1e6 / ((System.nanoTime() - t0) / 1e9));
          sh(a, "rm -f /workspace/output/out.bin");
          t0 = System.nanoTime();
          sh(a, "cat /tmp/viaput > /workspace/output/out.bin");
          add(
              m,
              "out of the guest, virtio-9p (MB/s)",
              size / 1e6 / ((System.nanoTime() - t0) / 1e9));
          Path back = work.resolve("back.bin");
          Files.deleteIfExists(back);
          t0 = System.nanoTime();
          a.getFile("/tmp/viaput", back, Duration.ofMinutes(2));
          add(
              m,
              "out of the guest, GET_FILE (MB/s)",
              size / 1e6 / ((System.nanoTime() - t0) / 1e9));
          sh(a, "rm -f /tmp/viaput");
        }
      }
    }
  }

  private static void rss(
      LibvirtConnection conn, BootSource boot, Path work, Map<String, List<Double>> m)
      throws Exception {
    int n = 3;
    VMTemplate template = VMTemplate.builder(name("rsstmpl")).boot(boot).build();
    List<VM> vms = new ArrayList<>();
    try (MemoryImage img = MemoryImage.capture(conn, template, work.resolve("rssimg"), AGENT)) {
      for (int i = 0; i < n; i++) {
        vms.add(img.restore(conn, name("rssclone"), Map.of(), AGENT));
      }
      Thread.sleep(2000);
      add(m, "host RSS of " + n + " idle clones (MB)", Stats.qemuRssMb(vms));
      Stats.closeAll(vms);
      for (int i = 0; i < n; i++) {
        VM vm = conn.define(template.copyAs(name("rsscold")).build());
        vms.add(vm);
        vm.start();
        vm.awaitAgent(AGENT);
      }
      Thread.sleep(2000);
      add(m, "host RSS of " + n + " idle cold-booted VMs (MB)", Stats.qemuRssMb(vms));
    } finally {
      Stats.closeAll(vms);
    }
  }

  private static void sh(AgentClient a, String script) throws Exception {
    ExecResult r = a.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofMinutes(2)));
    if (r.exitCode() != 0) {
      throw new IllegalStateException(script + ": " + r.stderrText());
    }
  }

  private static void deleteTree(Path root) throws Exception {
    if (Files.exists(root)) {
      try (var s = Files.walk(root)) {
        for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
  }
}
