package dev.agentvm.benchmarks;

import static dev.agentvm.benchmarks.Stats.ms;
import static dev.agentvm.benchmarks.Stats.pct;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.HostSet;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.Execution;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.TaskState;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxHosts;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
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
 * The same VM on this machine's libvirt and on a remote one, in one run: boot to agent ready, PING
 * and EXEC round trips, file transfer, a sandbox's create, pause, resume and fork; then 20
 * executions through a host set of one host and of both. The local host is the floor: the remote
 * protocol adds its channel stream (through libvirtd on the host), volume work on the host and
 * staging the images once.
 *
 * <pre>
 * java -cp benchmarks/target/agent-vm-benchmarks-*-all.jar dev.agentvm.benchmarks.RemoteBenchmark \
 *     qemu+tcp://10.213.9.2/system [rounds]
 * </pre>
 *
 * scripts/bench-remote.sh starts a second libvirtd in a network namespace for it and removes it
 * afterwards.
 */
public final class RemoteBenchmark {
  private RemoteBenchmark() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: RemoteBenchmark REMOTE_URI [rounds]");
      System.exit(2);
    }
    String remoteUri = args[0];
    int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 3;
    MicroImage image = MicroImageBuilder.create().build();
    BootSource boot = new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE);
    Path dir = Files.createTempDirectory("agentvm-bench-remote");
    int size = 20 * 1024 * 1024;
    byte[] data = new byte[size];
    new Random(18).nextBytes(data);
    Path file = dir.resolve("data.bin");
    Files.write(file, data);
    Map<String, List<Double>> local = new LinkedHashMap<>();
    Map<String, List<Double>> remote = new LinkedHashMap<>();
    double stageMs;
    try (LibvirtConnection lc = LibvirtConnection.open();
        LibvirtConnection rc = LibvirtConnection.open(remoteUri)) {
      long s0 = System.nanoTime();
      // first use on that host: the images are sent (a no-op if an earlier run left them there)
      try (VM first = rc.define(template(boot))) {
        stageMs = ms(System.nanoTime() - s0);
        first.start();
        first.awaitAgent(Duration.ofMinutes(2));
      }
      long uploads = rc.backend().imageUploads();
      SandboxSpec spec =
          SandboxSpec.builder()
              .namePrefix("agentvm-bench-rsb-")
              .idleTimeout(Duration.ZERO)
              .useWarmImage(false) // the cold path; the warm one is measured apart
              .build();
      SandboxSpec warm = spec.toBuilder().useWarmImage(true).build();
      try (Sandboxes ls = Sandboxes.open(lc);
          Sandboxes rs = Sandboxes.open(rc, dir.resolve("remote-sandboxes"))) {
        ls.warmUp(warm); // each host keeps its own (here a no-op where one exists)
        rs.warmUp(warm); // there made for these records, deleted below
        for (int r = 0; r < rounds; r++) {
          measure(lc, boot, file, dir, local);
          measure(rc, boot, file, dir, remote);
          sandbox(ls, spec, local);
          sandbox(rs, spec, remote);
          fromWarm(ls, warm, local);
          fromWarm(rs, warm, remote);
        }
        rs.dropWarmImages(); // the records go with the temporary directory: so must the image
      }
      System.out.printf(
          "%nRemote libvirt (%s) against this machine's (%s), %d rounds, ms unless noted%n",
          remoteUri, lc.uri(), rounds);
      System.out.printf(
          "  first VM on the host: define incl. sending images %.0f ms (%d uploads, %s)%n",
          stageMs,
          uploads,
          uploads == 0 ? "already there" : String.format("%.0f MB", imageMb(image)));
      System.out.printf("  %-34s %12s %12s %8s%n", "", "local", "remote", "ratio");
      row("boot to agent ready (median)", local, remote, "boot", 50);
      row("PING p50", local, remote, "ping", 50);
      row("PING p99", local, remote, "ping", 99);
      row("EXEC true p50", local, remote, "exec", 50);
      row("EXEC true p99", local, remote, "exec", 99);
      double lp = size / 1e6 / (pct(Stats.samples(local, "put"), 50) / 1e3);
      double rp = size / 1e6 / (pct(Stats.samples(remote, "put"), 50) / 1e3);
      double lg = size / 1e6 / (pct(Stats.samples(local, "get"), 50) / 1e3);
      double rg = size / 1e6 / (pct(Stats.samples(remote, "get"), 50) / 1e3);
      System.out.printf(
          "  %-34s %9.1f MB/s %7.1f MB/s %8.2f%n", "PUT_FILE 20 MB (median)", lp, rp, rp / lp);
      System.out.printf(
          "  %-34s %9.1f MB/s %7.1f MB/s %8.2f%n", "GET_FILE 20 MB (median)", lg, rg, rg / lg);
      Stats.ratio("remote host: PUT_FILE 20 MB / local host", rp, lp, "MB/s", false, Double.NaN);
      Stats.ratio("remote host: GET_FILE 20 MB / local host", rg, lg, "MB/s", false, Double.NaN);
      row("sandbox create, cold (median)", local, remote, "sbx-create", 50);
      row("sandbox create, warm image (median)", local, remote, "sbx-warm", 50);
      row("sandbox pause (median)", local, remote, "sbx-pause", 50);
      row("sandbox resume to ready (median)", local, remote, "sbx-resume", 50);
      row("sandbox fork into 1 (median)", local, remote, "sbx-fork", 50);
      System.out.println(
          "  (both hosts share this machine's 2 cores: the ratio is the remote protocol's cost)");
      executions(lc.uri(), remoteUri, dir);
    } finally {
      try (var s = Files.walk(dir)) {
        for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.delete(p);
        }
      }
    }
  }

  /** A sandbox restored from its host's warm image, to its first command answered. */
  private static void fromWarm(Sandboxes sandboxes, SandboxSpec spec, Map<String, List<Double>> out)
      throws Exception {
    long c0 = System.nanoTime();
    try (Sandbox sb = sandboxes.create(spec)) {
      sb.exec(ExecRequest.command("true"));
      add(out, "sbx-warm", ms(System.nanoTime() - c0));
    }
  }

  /** One sandbox's life: cold create, a command, pause, resume to ready, fork into one. */
  private static void sandbox(Sandboxes sandboxes, SandboxSpec spec, Map<String, List<Double>> out)
      throws Exception {
    long c0 = System.nanoTime();
    try (Sandbox sb = sandboxes.create(spec)) {
      add(out, "sbx-create", ms(System.nanoTime() - c0));
      sb.exec(ExecRequest.command("true"));
      long p0 = System.nanoTime();
      sb.pause();
      add(out, "sbx-pause", ms(System.nanoTime() - p0));
      long r0 = System.nanoTime();
      sb.resume();
      sb.exec(ExecRequest.command("true"));
      add(out, "sbx-resume", ms(System.nanoTime() - r0));
      long f0 = System.nanoTime();
      List<Sandbox> copies = sb.fork(1);
      add(out, "sbx-fork", ms(System.nanoTime() - f0));
      for (Sandbox c : copies) {
        c.close();
      }
    }
  }

  /**
   * 20 trivial executions, two at a time, through a host set of this machine alone and then of both
   * hosts. Both share this machine's cores, so this is a figure of correctness and overhead, not of
   * added capacity.
   */
  private static void executions(String localUri, String remoteUri, Path dir) throws Exception {
    System.out.printf("%n20 executions (echo), 2 at a time, cold sandboxes, through a host set%n");
    System.out.printf("  %-34s %10s %10s %10s%n", "", "wall s", "per exec", "on remote");
    for (List<String> uris : List.of(List.of(localUri), List.of(localUri, remoteUri))) {
      HostSet.Builder b = HostSet.builder().refreshEvery(Duration.ofMillis(500));
      uris.forEach(b::host);
      java.util.concurrent.atomic.AtomicInteger onRemote =
          new java.util.concurrent.atomic.AtomicInteger();
      try (HostSet set = b.build();
          SandboxHosts hosts =
              SandboxHosts.open(
                  set,
                  c ->
                      c.uri().equals(localUri)
                          ? Sandboxes.open(c)
                          : Sandboxes.open(c, dir.resolve("remote-sandboxes")));
          AgentExecutor ex =
              AgentExecutor.builder(hosts)
                  .sandbox(
                      SandboxSpec.builder()
                          .namePrefix("agentvm-bench-hx-")
                          .useWarmImage(false)
                          .build())
                  .maxConcurrent(2)
                  .listener(
                      (id, from, to, vm) -> {
                        if (to == TaskState.RUNNING && !vm.isEmpty()) {
                          hosts
                              .hostOf(vm)
                              .filter(u -> !u.equals(localUri))
                              .ifPresent(u -> onRemote.incrementAndGet());
                        }
                      })
                  .outputRoot(dir.resolve("outputs"))
                  .build()) {
        long t0 = System.nanoTime();
        List<Execution> runs = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
          runs.add(ex.submit(ExecutionRequest.script("echo " + i, "sh").build()));
        }
        for (Execution e : runs) {
          e.result().get();
        }
        double wall = (System.nanoTime() - t0) / 1e9;
        System.out.printf(
            "  %-34s %10.1f %9.2f s %10d%n",
            uris.size() == 1 ? "one host (this machine)" : "two hosts (this + remote)",
            wall,
            wall / 20,
            onRemote.get());
      }
    }
  }

  private static double imageMb(MicroImage image) throws java.io.IOException {
    return (Files.size(image.kernel()) + Files.size(image.initramfs())) / 1e6;
  }

  private static VMTemplate template(BootSource boot) {
    return VMTemplate.builder("agentvm-bench-" + UUID.randomUUID().toString().substring(0, 8))
        .resources(new ResourceProfile(1, 512))
        .boot(boot)
        .build();
  }

  private static void measure(
      LibvirtConnection conn, BootSource boot, Path file, Path dir, Map<String, List<Double>> out)
      throws Exception {
    try (VM vm = conn.define(template(boot))) {
      long b0 = System.nanoTime();
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      add(out, "boot", ms(System.nanoTime() - b0));
      for (int i = 0; i < 20; i++) { // warm up
        agent.ping(Duration.ofSeconds(10));
      }
      for (int i = 0; i < 100; i++) {
        add(out, "ping", agent.ping(Duration.ofSeconds(10)).toNanos() / 1e6);
      }
      ExecRequest trueCmd = ExecRequest.command("true").withTimeout(Duration.ofSeconds(30));
      for (int i = 0; i < 5; i++) {
        agent.exec(trueCmd);
      }
      for (int i = 0; i < 30; i++) {
        long a = System.nanoTime();
        agent.exec(trueCmd);
        add(out, "exec", ms(System.nanoTime() - a));
      }
      long p0 = System.nanoTime();
      agent.putFile(file, "/tmp/bench.bin", 0644, Duration.ofMinutes(5));
      add(out, "put", ms(System.nanoTime() - p0));
      long g0 = System.nanoTime();
      agent.getFile("/tmp/bench.bin", dir.resolve("back.bin"), Duration.ofMinutes(5));
      add(out, "get", ms(System.nanoTime() - g0));
      Files.delete(dir.resolve("back.bin"));
    }
  }

  private static void add(Map<String, List<Double>> m, String key, double v) {
    m.computeIfAbsent(key, k -> new ArrayList<>()).add(v);
  }

  private static void row(
      String what,
      Map<String, List<Double>> local,
      Map<String, List<Double>> remote,
      String key,
      int p) {
    double l = pct(Stats.samples(local, key), p);
    double r = pct(Stats.samples(remote, key), p);
    System.out.printf("  %-34s %12.2f %12.2f %8.2f%n", what, l, r, r / l);
    Stats.ratio("remote host: " + what + " / local host", r, l, "ms", true, Double.NaN);
  }
}
