package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.internal.Setting;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * VMs on another libvirt host, reached only through libvirt's remote protocol: a real second daemon
 * in its own network and mount namespaces ({@link RemoteLibvirtHost}), which cannot see this
 * machine's files. Images travel as storage volumes, the agent through libvirt's channel stream.
 */
class RemoteHostIT {
  private static RemoteLibvirtHost host;
  private static LibvirtConnection conn;

  @BeforeAll
  static void startHost() {
    // an abandoned upload is taken over after 3 s instead of 15: the behaviour, not the wait
    System.setProperty(Setting.REMOTE_UPLOAD_STALL.property(), "3");
    host = RemoteLibvirtHost.start(1);
    conn = LibvirtConnection.open(host.uri());
  }

  @AfterAll
  static void stopHost() {
    System.clearProperty(Setting.REMOTE_UPLOAD_STALL.property());
    RemoteLibvirtHost.stop(host, conn);
  }

  @AfterEach
  void nothingLeftOnTheHost() {
    TestVms.assertNoTestDomains(conn);
  }

  private static VMTemplate template(String what) {
    return VMTemplate.builder(TestVms.name(what)).boot(TestVms.boot()).build();
  }

  @Test
  void aVmOnAnotherHostBootsRunsCommandsMovesFilesAndLeavesNothingThere(@TempDir Path tmp)
      throws Exception {
    assertFalse(conn.backend().isLocal());
    VMTemplate t = template("remote");
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      assertEquals(TestVms.image().kernelRelease(), agent.hello().kernelRelease());
      ExecResult r =
          agent.exec(
              ExecRequest.script("echo hello from $(hostname); cat /proc/cmdline", "sh")
                  .withTimeout(Duration.ofMinutes(1)));
      assertEquals(0, r.exitCode(), r.toString());
      assertTrue(r.stdoutText().startsWith("hello from"), r.stdoutText());

      byte[] data = new byte[3 << 20];
      new Random(18).nextBytes(data);
      Path up = tmp.resolve("up.bin");
      Files.write(up, data);
      agent.putFile(up, "/tmp/data.bin", 0640, Duration.ofMinutes(1));
      Path back = tmp.resolve("back.bin");
      agent.getFile("/tmp/data.bin", back, Duration.ofMinutes(1));
      assertTrue(java.util.Arrays.equals(data, Files.readAllBytes(back)), "file round trip");

      // the console log is on that host: read through libvirt
      String console =
          new String(vm.consoleTail(1 << 20).orElseThrow(), StandardCharsets.ISO_8859_1);
      assertTrue(console.contains("agentvm-init"), console);
      assertTrue(host.poolFiles().contains(t.name() + ".console.log"), host.poolFiles().toString());
      assertFalse(Files.exists(t.consoleLog()), "no console log on this machine");
      assertEquals(1, host.qemuProcesses());
    }
    assertFalse(conn.domainNames().contains(t.name()));
    assertFalse(Files.exists(t.runDir()), "runtime directory left here");
    assertFalse(host.poolFiles().contains(t.name() + ".console.log"), "console log left there");
    assertEquals(0, host.qemuProcesses(), "QEMU left on the host");
  }

  @Test
  void imagesAreUploadedOncePerContent() {
    try (VM first = conn.define(template("once-a"))) {
      first.start();
      first.awaitAgent(Duration.ofMinutes(2));
    }
    long uploads = conn.backend().imageUploads();
    List<String> files = host.poolFiles();
    List<String> images =
        files.stream().filter(f -> f.startsWith("img-") && !f.endsWith(".ready")).toList();
    assertEquals(2, images.size(), "kernel and initramfs: " + files);
    for (String image : images) {
      assertTrue(files.contains(image + ".ready"), "sent whole: " + files);
    }
    try (VM second = conn.define(template("once-b"))) {
      // images are staged when a VM is defined; the first VM's boot proved their bytes
      assertEquals(VMState.DEFINED, second.state());
    }
    assertEquals(uploads, conn.backend().imageUploads(), "the second VM uploaded nothing");
    // a new connection (another client) finds them there too
    assertTrue(conn.hasFiles(LibvirtConnection.filesOf(template("x"))), "known staged there");
    try (LibvirtConnection other = LibvirtConnection.open(host.uri())) {
      // placement's hint: a client knows only what it staged, or found staged, itself
      assertFalse(other.hasFiles(LibvirtConnection.filesOf(template("x"))), "not known yet");
      try (VM third = other.define(template("once-c"))) {
        assertEquals(VMState.DEFINED, third.state());
        assertEquals(0, other.backend().imageUploads());
      }
      assertTrue(other.hasFiles(LibvirtConnection.filesOf(template("x"))), "found there");
    }
  }

  @Test
  void anUploadAbandonedHalfWayIsSentAgainAndNeverUsed() throws Exception {
    Path kernel = TestVms.image().kernel();
    String name = "img-" + sha256(kernel).substring(0, 40) + "-" + kernel.getFileName();
    conn.define(template("first")).close(); // the pool exists and has the images
    // what a client killed during its upload leaves: the volume, part of the bytes, no marker
    virsh("vol-delete", "--pool", "agent-vm", name);
    virsh("vol-delete", "--pool", "agent-vm", name + ".ready");
    virsh("vol-create-as", "agent-vm", name, Long.toString(Files.size(kernel)), "--format", "raw");
    Path half = Files.createTempFile("half", ".bin");
    try {
      byte[] all = Files.readAllBytes(kernel);
      Files.write(half, java.util.Arrays.copyOf(all, all.length / 2));
      virsh("vol-upload", "--pool", "agent-vm", name, half.toString());
    } finally {
      Files.delete(half);
    }
    long before = conn.backend().imageUploads();
    try (VM vm = conn.define(template("after-abandon"))) {
      vm.start();
      // it boots: the kernel was sent again in full once the abandoned upload had stalled
      vm.awaitAgent(Duration.ofMinutes(2));
    }
    assertEquals(before + 1, conn.backend().imageUploads());
    assertTrue(host.poolFiles().contains(name + ".ready"));
  }

  private static String sha256(Path f) throws Exception {
    java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
    md.update(Files.readAllBytes(f));
    return java.util.HexFormat.of().formatHex(md.digest());
  }

  private static void virsh(String... args) throws Exception {
    List<String> cmd = new java.util.ArrayList<>(List.of("virsh", "-q", "-c", host.uri()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), cmd.toString());
    if (p.exitValue() != 0 && !args[0].equals("vol-delete")) {
      throw new IllegalStateException(cmd + ": " + out);
    }
  }

  @Test
  void whatTheHostCannotSeeIsRefusedBeforeAnythingIsMade(@TempDir Path tmp) throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("share"));
    VMTemplate shared =
        VMTemplate.builder(TestVms.name("share"))
            .boot(TestVms.boot())
            .share(new ShareAttachment(dir, "work", false))
            .build();
    HypervisorException e = assertThrows(HypervisorException.class, () -> conn.define(shared));
    assertTrue(e.getMessage().contains("shared directory"), e.getMessage());
    assertFalse(conn.domainNames().contains(shared.name()));
    assertFalse(Files.exists(shared.runDir()), "runtime directory left after a refusal");
  }

  @Test
  void aHostThatGoesAwayFailsCallsWithItsUriAndRejoins() throws Exception {
    VMTemplate t = template("away");
    try (VM vm = conn.define(t)) {
      vm.start();
      vm.awaitAgent(Duration.ofMinutes(2));
      host.stopDaemon();
      ConnectionException e =
          assertTimeoutPreemptively(
              Duration.ofSeconds(30),
              () -> assertThrows(ConnectionException.class, conn::domainNames));
      assertEquals(host.uri(), e.uri());
      assertTrue(e.getMessage().contains(host.uri()), e.getMessage());
      assertEquals(1, host.qemuProcesses(), "the VM itself runs on");

      host.startDaemon();
      assertTrue(conn.domainNames().contains(t.name()), "reconnected; the VM is still there");
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(1));
      assertEquals(0, agent.exec(ExecRequest.command("true")).exitCode());
    }
    assertEquals(0, host.qemuProcesses());
  }

  @Test
  void aHostThatHangsFailsCallsWithinSecondsAndComesBack() {
    conn.domainNames(); // connected
    host.freezeDaemon();
    try {
      long t0 = System.nanoTime();
      ConnectionException first =
          assertTimeoutPreemptively(
              Duration.ofSeconds(60),
              () -> assertThrows(ConnectionException.class, conn::domainNames));
      long firstMs = (System.nanoTime() - t0) / 1_000_000;
      long t1 = System.nanoTime();
      ConnectionException second =
          assertTimeoutPreemptively(
              Duration.ofSeconds(60),
              () -> assertThrows(ConnectionException.class, conn::domainNames));
      long secondMs = (System.nanoTime() - t1) / 1_000_000;
      System.out.printf(
          "RemoteHostIT: a hung host failed a call after %d ms (%s), the next after %d ms (%s)%n",
          firstMs, first.getMessage(), secondMs, second.getMessage());
      assertEquals(host.uri(), first.uri());
    } finally {
      host.thawDaemon();
    }
    conn.domainNames(); // it answers again: the host rejoined
  }

  @Test
  void aGuestThatStopsReadingItsRemoteChannelHangsNoCall() throws Exception {
    // the host's writes go through libvirt's stream to the daemon there, which stops taking them
    HostileGuestChannelIT.stopsReading(conn, template("stall"));
    assertEquals(0, host.qemuProcesses());
  }

  @Test
  void aGuestFloodingItsRemoteChannelWithBadFramesGetsItClosed() throws Exception {
    HostileGuestChannelIT.floods(conn, template("flood"));
    assertEquals(0, host.qemuProcesses());
  }

  @Test
  void aHostSetPlacesOnBothHostsPassesOverAHungOneAndTakesItBack() throws Exception {
    String local = LibvirtConnection.defaultUri();
    List<VM> vms = new java.util.concurrent.CopyOnWriteArrayList<>();
    try (HostSet hosts =
        HostSet.builder()
            .host(local, 1, java.util.Map.of("where", "here"))
            .host(host.uri(), 1, java.util.Map.of("where", "there"))
            .refreshEvery(Duration.ofMillis(500))
            .backoff(Duration.ofSeconds(1), Duration.ofSeconds(2))
            .placeWait(Duration.ofSeconds(2))
            .build()) {
      try {
        placeHangAndRejoin(hosts, local, vms);
      } finally {
        for (VM v : vms) { // before the set closes the connections they use
          try {
            v.shutdown(Duration.ZERO); // nothing in them to power off gracefully
            v.close();
          } catch (RuntimeException e) {
            // the test's own failure says more; the checks below find any leftover
            System.out.println("closing " + v.name() + " failed: " + e);
          }
        }
      }
    }
    try (LibvirtConnection here = LibvirtConnection.open(local)) {
      TestVms.assertNoTestDomains(here); // the remote host is checked after each test
    }
  }

  private static void placeHangAndRejoin(HostSet hosts, String local, List<VM> vms)
      throws Exception {
    awaitHosts(hosts, s -> s.get(0).up() && s.get(1).up());
    String before = hosts.hosts().toString(); // both idle here: the pending placements alternate
    for (int i = 0; i < 4; i++) {
      vms.add(hosts.define(template("set")));
    }
    assertEquals(
        java.util.Set.of(local, host.uri()),
        vms.stream().map(VM::hostUri).collect(java.util.stream.Collectors.toSet()),
        "a burst spreads over both; the hosts were " + before);
    assertTrue(conn.domainNames().containsAll(remoteNames(vms)), "they are there");
    VM there = vms.stream().filter(v -> v.hostUri().equals(host.uri())).findFirst().orElseThrow();
    there.start(); // a placed VM runs like any other (booted, not awaited)

    host.freezeDaemon(); // the kernel still accepts: only the daemon's silence tells
    long frozenAt = System.nanoTime();
    try {
      awaitHosts(hosts, s -> !s.get(1).up());
      long passedOverMs = (System.nanoTime() - frozenAt) / 1_000_000;
      HostSet.HostStatus hung = hosts.hosts().get(1);
      assertTrue(hung.lastError().orElseThrow().contains(host.uri()), hung.toString());
      assertTimeoutPreemptively(
          Duration.ofSeconds(10),
          () -> {
            for (int i = 0; i < 3; i++) {
              vms.add(hosts.define(template("set-while-hung")));
            }
          },
          "placing while a host hangs waits for nothing");
      assertTrue(
          vms.stream()
              .filter(v -> v.name().contains("set-while-hung"))
              .allMatch(v -> v.hostUri().equals(local)),
          "new work went home");
      NoHostAvailableException none =
          assertThrows(
              NoHostAvailableException.class,
              () -> hosts.place(template("set-there"), java.util.Map.of("where", "there")));
      assertTrue(none.getMessage().contains(host.uri()), none.getMessage());
      System.out.printf(
          "RemoteHostIT: a hung host was passed over %d ms after it stopped answering%n",
          passedOverMs);
    } finally {
      host.thawDaemon();
    }
    awaitHosts(hosts, s -> s.get(1).up());
    VM back = hosts.define(template("set-back"), java.util.Map.of("where", "there"));
    vms.add(back);
    assertEquals(host.uri(), back.hostUri(), "the host rejoined and takes work again");
  }

  private static List<String> remoteNames(List<VM> vms) {
    return vms.stream().filter(v -> v.hostUri().equals(host.uri())).map(VM::name).toList();
  }

  private static void awaitHosts(
      HostSet hosts, java.util.function.Predicate<List<HostSet.HostStatus>> p) throws Exception {
    long end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (!p.test(hosts.hosts()) && System.nanoTime() < end) {
      Thread.sleep(100);
    }
    assertTrue(p.test(hosts.hosts()), hosts.hosts().toString());
  }

  @Test
  void aDeadClientsVmsAreReapedThereAndOtherMachinesVmsAreNot() throws Exception {
    String orphan = TestVms.name("orphan");
    Process child = TestVms.startJvm(OrphanMaker.class, orphan, host.uri());
    VMTemplate foreign =
        VMTemplate.builder(TestVms.name("foreign"))
            .boot(TestVms.boot())
            .owner("another-machine-1:4194305@2026-01-01T00:00:00Z")
            .build();
    try {
      ReaperIT.awaitReady(child);
      child.destroyForcibly(); // SIGKILL: no cleanup
      assertTrue(child.waitFor(10, TimeUnit.SECONDS));
      // a client on another machine whose pid happens to be dead here
      conn.backend().define(foreign, VirtType.QEMU);
      assertTrue(conn.domainNames().containsAll(List.of(orphan, foreign.name())));

      try (LibvirtConnection fresh = LibvirtConnection.open(host.uri())) {
        List<String> names = fresh.domainNames();
        assertFalse(names.contains(orphan), "open() reaped what this machine's dead JVM left");
        assertTrue(names.contains(foreign.name()), "another machine's VM is not judged here");
      }
      assertFalse(host.poolFiles().contains(orphan + ".console.log"));
      assertFalse(ProcessOwners.isOfThisMachine(foreign.owner().orElseThrow()));
    } finally {
      child.destroyForcibly();
      conn.backend().lookup(foreign.name()).ifPresent(d -> d.undefine());
    }
  }
}
