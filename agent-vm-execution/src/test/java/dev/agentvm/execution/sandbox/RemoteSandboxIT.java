package dev.agentvm.execution.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RemoteLibvirtHost;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressRecord;
import dev.agentvm.network.egress.EgressResolver;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sandboxes on another libvirt host, reached only through libvirt's remote protocol ({@link
 * RemoteLibvirtHost}: a second daemon in its own network and mount namespaces that cannot see this
 * machine's files). Their overlays and memory images live in the host's pool; their records here.
 */
class RemoteSandboxIT {
  private static RemoteLibvirtHost host;
  private static LibvirtConnection conn;

  private final SandboxSpec spec =
      SandboxSpec.defaults()
          .withNamePrefix(TestVms.PREFIX + "rsb-")
          .withCommandTimeout(Duration.ofSeconds(60));

  @BeforeAll
  static void startHost() {
    host = RemoteLibvirtHost.start(3);
    conn = LibvirtConnection.open(host.uri());
  }

  @AfterAll
  static void stopHost() {
    RemoteLibvirtHost.stop(host, conn);
  }

  private static String run(Sandbox sb, String script) throws Exception {
    ExecResult r = sb.exec(ExecRequest.script(script, "sh"));
    assertEquals(0, r.exitCode(), r.toString());
    return r.stdoutText().strip();
  }

  private static List<String> sandboxFiles() {
    return host.poolFiles().stream().filter(f -> f.startsWith("sbx.")).toList();
  }

  @Test
  void aSandboxOnAnotherHostRunsPausesResumesElsewhereChecksPointsAndLeavesNothing(
      @TempDir Path root) throws Exception {
    String id;
    try (Sandboxes sandboxes = Sandboxes.open(conn, root)) {
      Sandbox sb = sandboxes.create(spec);
      id = sb.id();
      sb.files().write("/workspace/note.txt", "written here\n".getBytes(UTF_8));
      assertEquals("written here", run(sb, "cat /workspace/note.txt"));
      assertEquals(1, host.qemuProcesses());
      List<String> files = sandboxFiles();
      assertEquals(1, files.size(), "its top overlay, in the host's pool: " + files);
      assertTrue(files.get(0).endsWith(".qcow2"), files.toString());
      assertFalse(Files.exists(root.resolve(id).resolve("disk.qcow2")), "no disk here");

      sb.pause();
      assertEquals(SandboxState.PAUSED, sb.state());
      assertEquals(0, host.qemuProcesses(), "paused: no QEMU on the host");
      assertTrue(
          sandboxFiles().stream().anyMatch(f -> f.endsWith("." + id + ".paused.save")),
          "its memory is on the host: " + sandboxFiles());
    }

    // another Sandboxes object on the same records (as another process would): resumes it there
    try (Sandboxes other = Sandboxes.open(conn, root)) {
      // it makes sandboxes too: the staged empty workspace, seen again after the pool's refresh
      try (Sandbox second = other.create(spec)) {
        assertEquals("fresh", run(second, "[ ! -e /workspace/note.txt ] && echo fresh"));
      }
      Sandbox sb = other.connect(id);
      sb.resume();
      assertEquals("written here", run(sb, "cat /workspace/note.txt"));
      assertTrue(
          sandboxFiles().stream().noneMatch(f -> f.endsWith(".paused.save")),
          "the paused memory is deleted once resumed: " + sandboxFiles());

      sb.checkpoint("before");
      sb.files().write("/workspace/later.txt", "later\n".getBytes(UTF_8));
      sb.rollback("before");
      assertFalse(sb.files().exists("/workspace/later.txt"), "rolled back");
      assertEquals("written here", run(sb, "cat /workspace/note.txt"));
      sb.checkpoint("before"); // replaced in place on a host
      assertEquals(List.of("before"), sb.checkpoints());

      // forks on a remote host: SandboxHostsIT
      sb.close();
      assertThrows(NoSuchSandboxException.class, () -> other.connect(id));
    }
    assertEquals(0, host.qemuProcesses(), "QEMU left on the host");
    assertEquals(List.of(), sandboxFiles(), "files left in the host's pool");
    TestVms.assertNoTestDomains(conn);
  }

  @Test
  void aWarmImageOnTheHostMakesCreateARestoreWithItsOwnIdentity(@TempDir Path root)
      throws Exception {
    io.micrometer.core.instrument.simple.SimpleMeterRegistry registry =
        new io.micrometer.core.instrument.simple.SimpleMeterRegistry();
    List<String> warm;
    try (Sandboxes sandboxes = Sandboxes.open(conn, root)) {
      sandboxes.bindTo(registry);
      sandboxes.warmUp(spec);
      warm = sandboxFiles();
      sandboxes.warmUp(spec); // made once, then reused
      assertEquals(warm, sandboxFiles());
      assertEquals(2, warm.size(), "its memory and its layer, in the host's pool: " + warm);
      assertTrue(warm.stream().anyMatch(f -> f.contains(".W.") && f.endsWith(".save")), "" + warm);
      assertEquals(0, host.qemuProcesses(), "the captured VM is gone");
      try (Sandbox a = sandboxes.create(spec);
          Sandbox b = sandboxes.create(spec)) {
        assertEquals(2, creates(registry, "restore", "success"));
        assertEquals(a.id(), run(a, "hostname"));
        assertEquals(b.id(), run(b, "hostname"));
        SandboxIT.assertClockIsTheHosts(a); // not the capture's
        assertFalse(run(a, "cat /etc/machine-id").equals(run(b, "cat /etc/machine-id")));
        a.files().write("/workspace/only-a", "a".getBytes(UTF_8));
        assertFalse(b.files().exists("/workspace/only-a"));
        a.pause(); // its disk stands on the warm image's layer, on the host
        a.resume();
        assertEquals("a", run(a, "cat /workspace/only-a"));
      }
      assertEquals(warm, sandboxFiles(), "only the warm image stays");
    }
    // another object on the same records (it collects unused layers at open) restores it too; it
    // reports into the same registry, which the first left at its close
    try (Sandboxes later = Sandboxes.open(conn, root)) {
      later.bindTo(registry);
      try (Sandbox c = later.create(spec)) {
        assertEquals(c.id(), run(c, "hostname"));
      }
      assertEquals(1, creates(registry, "restore", "success"));

      // a damaged warm image (here: its memory gone from the host) is not restored: the create
      // boots instead, and the image is forgotten
      String memory = warm.stream().filter(f -> f.endsWith(".save")).findFirst().orElseThrow();
      conn.hostStorage().orElseThrow().delete(memory);
      try (Sandbox d = later.create(spec)) {
        assertEquals("booted", run(d, "echo booted"));
      }
      assertEquals(1, creates(registry, "restore", "failure"));
      assertEquals(1, creates(registry, "cold", "success"));
      assertEquals(0, later.dropWarmImages(), "forgotten already; its layer is collected");
    }
    assertEquals(0, host.qemuProcesses(), "QEMU left on the host");
    assertEquals(List.of(), sandboxFiles(), "files left in the host's pool");
    TestVms.assertNoTestDomains(conn);
  }

  private static long creates(
      io.micrometer.core.instrument.MeterRegistry registry, String kind, String outcome) {
    return registry
        .find("agentvm.sandbox.create")
        .tags("kind", kind, "outcome", outcome)
        .timers()
        .stream()
        .mapToLong(t -> t.count())
        .sum();
  }

  @Test
  void aRootHoldsOneHostsSandboxes(@TempDir Path root) {
    Sandboxes.open(conn, root).close();
    assertTrue(Files.exists(root.resolve(Sandboxes.HOST_FILE)));
    try (LibvirtConnection local = LibvirtConnection.open()) {
      SandboxException e = assertThrows(SandboxException.class, () -> Sandboxes.open(local, root));
      assertTrue(e.getMessage().contains(conn.uri()), e.getMessage());
    }
  }

  @Test
  void aVmPoolsFactoriesRefuseTheHostBeforeAnythingIsMade(@TempDir Path workspaces) {
    VMTemplate t = VMTemplate.builder(TestVms.name("pool")).boot(TestVms.boot()).build();
    for (org.junit.jupiter.api.function.Executable make :
        List.<org.junit.jupiter.api.function.Executable>of(
            () ->
                new dev.agentvm.execution.ColdBootVmFactory(
                    conn, t, workspaces, Duration.ofMinutes(1), Duration.ZERO),
            () -> dev.agentvm.execution.CloneVmFactory.capture(conn, t, Duration.ofMinutes(1)))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, make);
      assertTrue(
          e.getMessage().contains(conn.uri()) && e.getMessage().contains("SandboxHosts"),
          e.getMessage());
    }
    assertFalse(conn.domainNames().contains(t.name()), "nothing defined there");
    assertFalse(
        Files.exists(
            dev.agentvm.internal.AgentVmPaths.stateRoot().resolve("images").resolve(t.name())),
        "no image directory here");
  }

  @Test
  void aDeadClientsSandboxesAreReapedOnTheHostToo(@TempDir Path root) throws Exception {
    String id;
    try (Sandboxes sandboxes = Sandboxes.open(conn, root)) {
      Sandbox sb = sandboxes.create(spec.withPausedRetention(Duration.ofSeconds(1)));
      id = sb.id();
      sb.pause();
    }
    assertFalse(sandboxFiles().isEmpty());
    Thread.sleep(1100);
    try (Sandboxes later = Sandboxes.open(conn, root)) {
      assertEquals(1, later.reapedAtOpen(), "its retention ended");
      assertThrows(NoSuchSandboxException.class, () -> later.connect(id));
    }
    assertEquals(List.of(), sandboxFiles(), "files left in the host's pool");
  }

  @Test
  void egressFromAGuestOnAnotherHostLeavesFromThisClientAndFollowsThePolicy(@TempDir Path root)
      throws Exception {
    List<String> asked = new java.util.concurrent.CopyOnWriteArrayList<>();
    HttpServer http =
        HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 4);
    http.createContext(
        "/",
        x -> {
          asked.add(x.getRequestURI().toString());
          byte[] body = ("hello " + x.getRequestURI()).getBytes(UTF_8);
          x.sendResponseHeaders(200, body.length);
          x.getResponseBody().write(body);
          x.close();
        });
    http.start();
    try {
      int port = http.getAddress().getPort();
      // both names are this client's loopback, which the remote host cannot reach: only the
      // client's proxy can have made the connections
      EgressResolver names =
          name -> {
            if (name.equals("allowed.test") || name.equals("other.test")) {
              return List.of(InetAddress.getByAddress(name, new byte[] {127, 0, 0, 1}));
            }
            throw new UnknownHostException(name);
          };
      EgressPolicy policy =
          EgressPolicy.builder()
              .allowDomain("allowed.test")
              .ports(port)
              .allowBlock("127.0.0.1/32")
              .build();
      try (Sandboxes sandboxes = Sandboxes.open(conn, root).egressResolver(names);
          Sandbox sb = sandboxes.create(spec.withEgress(policy))) {
        assertEquals("lo", run(sb, "ls /sys/class/net"), "no network device in the guest");
        String get = "wget -q -O - http://%s:" + port + "/%s 2>&1; echo \" rc=$?\"";
        assertEquals("hello /there rc=0", run(sb, String.format(get, "allowed.test", "there")));
        String denied = run(sb, String.format(get, "other.test", "no"));
        assertTrue(denied.contains("403") && denied.endsWith("rc=1"), denied);
        assertEquals(List.of("/there"), asked, "the denied request never reached the server");

        sb.pause(); // the proxy comes back with the sandbox, over the host's new channel
        sb.resume();
        assertEquals("hello /again rc=0", run(sb, String.format(get, "allowed.test", "again")));
        // a connection is recorded when its stream is released, a moment after the command ends
        long end = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        List<EgressRecord> log = sb.egressLog();
        while (log.size() < 3 && System.nanoTime() < end) {
          Thread.sleep(100);
          log = sb.egressLog();
        }
        assertEquals(3, log.size(), log.toString());
        assertEquals(
            2,
            log.stream()
                .filter(r -> r.allowed() && r.host().equals("allowed.test") && r.bytesIn() > 0)
                .count(),
            log.toString());
        assertTrue(
            log.stream().anyMatch(r -> !r.allowed() && r.host().equals("other.test")),
            log.toString());
      }
    } finally {
      http.stop(0);
    }
    assertEquals(0, host.qemuProcesses(), "QEMU left on the host");
    TestVms.assertNoTestDomains(conn);
  }
}
