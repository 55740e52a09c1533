package dev.agentvm.execution.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.ConnectionException;
import dev.agentvm.core.HostSet;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RemoteLibvirtHost;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.Execution;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.ExecutionResult;
import dev.agentvm.execution.TaskState;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sandboxes and executions over a set of two real libvirt hosts: this machine's daemon and a second
 * one in its own namespaces, reached only through libvirt's remote protocol ({@link
 * RemoteLibvirtHost}). Placement uses both; a host that goes away fails its sandboxes' calls with
 * the typed error and new work goes to the other; when it is back, what it kept is reaped.
 */
class SandboxHostsIT {
  private static final String LOCAL = "qemu:///system";
  private static RemoteLibvirtHost remote;

  private final SandboxSpec spec =
      SandboxSpec.defaults()
          .withNamePrefix(TestVms.PREFIX + "hsb-")
          .withCommandTimeout(Duration.ofSeconds(60));
  private final Map<String, SimpleMeterRegistry> meters = new ConcurrentHashMap<>();

  @BeforeAll
  static void startHost() {
    remote = RemoteLibvirtHost.start(4);
  }

  @AfterAll
  static void stopHost() {
    try (LibvirtConnection local = LibvirtConnection.open()) {
      TestVms.reapTestDomains(local);
    } finally {
      if (remote != null) {
        try (LibvirtConnection c = LibvirtConnection.open(remote.uri())) {
          TestVms.reapTestDomains(c);
        } catch (RuntimeException e) {
          // the daemon may be the thing that failed; the teardown removes everything anyway
        }
        remote.close();
      }
    }
  }

  /**
   * Each host's sandboxes, with their creates counted: this machine's in their default place (QEMU
   * must reach their disks), the remote host's records under the test's directory.
   */
  private Function<LibvirtConnection, Sandboxes> opener(Path root) {
    return c -> {
      Sandboxes s = uncounted(root).apply(c);
      s.bindTo(meters.computeIfAbsent(c.uri(), u -> new SimpleMeterRegistry()));
      return s;
    };
  }

  /** The same places, for a second object (as another process would open them). */
  private static Function<LibvirtConnection, Sandboxes> uncounted(Path root) {
    return c ->
        c.uri().equals(LOCAL) ? Sandboxes.open(c) : Sandboxes.open(c, root.resolve("remote"));
  }

  private long created(String uri) {
    SimpleMeterRegistry r = meters.get(uri);
    return r == null
        ? 0
        : r.find("agentvm.sandbox.create").tags("outcome", "success").timers().stream()
            .mapToLong(t -> t.count())
            .sum();
  }

  private static HostSet hosts() {
    return HostSet.builder()
        .host(LOCAL)
        .host(remote.uri())
        .refreshEvery(Duration.ofMillis(500))
        .backoff(Duration.ofSeconds(1), Duration.ofSeconds(2))
        .build();
  }

  private static String run(Sandbox sb, String script) throws Exception {
    var r = sb.exec(ExecRequest.script(script, "sh"));
    assertEquals(0, r.exitCode(), r.toString());
    return r.stdoutText().strip();
  }

  @Test
  void executionsAndSandboxesUseBothHostsAndSurviveOneGoingAway(@TempDir Path root)
      throws Exception {
    try (HostSet set = hosts();
        SandboxHosts sandboxes = SandboxHosts.open(set, opener(root))) {
      // 10 executions, two at a time: each in a sandbox of its own on the host with most room
      try (AgentExecutor ex =
          AgentExecutor.builder(sandboxes)
              .sandbox(spec)
              .maxConcurrent(2)
              .outputRoot(root.resolve("outputs"))
              .build()) {
        List<Execution> runs = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
          runs.add(ex.submit(ExecutionRequest.script("echo run " + i, "sh").build()));
        }
        for (int i = 0; i < 10; i++) {
          ExecutionResult r = runs.get(i).result().get();
          assertEquals(TaskState.COMPLETED, r.state(), r.toString());
          assertEquals("run " + i, r.stdoutText().strip());
        }
        assertThrows(
            IllegalArgumentException.class,
            () -> AgentExecutor.builder(sandboxes).keepReady(1).build(),
            "keepReady is per host");
      }
      long local = created(LOCAL);
      long there = created(remote.uri());
      assertEquals(10, local + there);
      assertTrue(
          local > 0 && there > 0, "both hosts used: " + local + " here, " + there + " there");

      // four sandboxes at once: placement spreads them
      List<Sandbox> four = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        four.add(sandboxes.create(spec));
      }
      List<Sandbox> onRemote = new ArrayList<>();
      for (Sandbox sb : four) {
        String host = sandboxes.hostOf(sb.id()).orElseThrow();
        if (!host.equals(LOCAL)) {
          onRemote.add(sb);
        }
      }
      assertTrue(
          !onRemote.isEmpty() && onRemote.size() < 4, onRemote.size() + " of 4 on the remote host");

      // files, pause/resume and fork on the remote host
      Sandbox r = onRemote.get(0);
      r.files().write("/workspace/x.txt", "there\n".getBytes(UTF_8));
      r.pause();
      Sandbox again;
      try (SandboxHosts other = SandboxHosts.open(set, uncounted(root))) {
        again = other.connect(r.id());
        assertEquals(SandboxState.PAUSED, again.state());
      }
      // the other object is closed (it closed nothing paused); resume here
      Sandbox same = sandboxes.connect(r.id());
      same.resume();
      assertEquals("there", run(same, "cat /workspace/x.txt"));
      Sandbox copy = same.fork(1).get(0);
      assertEquals(remote.uri(), sandboxes.hostOf(copy.id()).orElseThrow());
      assertEquals("there", run(copy, "cat /workspace/x.txt"));
      copy.close();

      // a host where a sandbox of the shape waits ready is preferred, and hands it out
      Sandboxes remoteSandboxes = sandboxes.on(remote.uri());
      remoteSandboxes.keepReady(spec, 1);
      long end = System.nanoTime() + Duration.ofMinutes(2).toNanos();
      while (remoteSandboxes.readyCount(spec) < 1 && System.nanoTime() < end) {
        Thread.sleep(200);
      }
      assertEquals(1, remoteSandboxes.readyCount(spec), "a ready sandbox on the remote host");
      try (Sandbox ready = sandboxes.create(spec)) {
        assertEquals(0, remoteSandboxes.readyCount(spec), "the ready one was taken");
        assertEquals(remote.uri(), sandboxes.hostOf(ready.id()).orElseThrow());
        remoteSandboxes.keepReady(spec, 0);
        assertEquals("ready", run(ready, "echo ready"));
      }

      // taking the ready one may have started a refill there, which keepReady(0) closes when it
      // is made: it must be over before the daemon goes, or its half-made sandbox outlives the test
      long settle = System.nanoTime() + Duration.ofMinutes(2).toNanos();
      while ((remoteSandboxes.fillingReady() || remote.qemuProcesses() != onRemote.size())
          && System.nanoTime() < settle) {
        Thread.sleep(200);
      }
      assertEquals(onRemote.size(), remote.qemuProcesses(), "QEMUs on the remote host");

      // the remote daemon goes away: its sandboxes' calls fail with the typed error, naming it
      remote.stopDaemon();
      long t0 = System.nanoTime();
      Exception failed = assertThrows(Exception.class, () -> run(same, "true"));
      long failMs = (System.nanoTime() - t0) / 1_000_000;
      ConnectionException lost = connectionFailure(failed);
      assertNotNull(lost, "a ConnectionException in the causes of " + failed);
      assertTrue(lost.getMessage().contains(remote.uri()), lost.getMessage());
      assertTrue(failMs < 30_000, "failed after " + failMs + " ms");
      // a close that cannot reach the host leaves the rest to the reaper
      assertThrows(RuntimeException.class, same::close);
      // new work goes to this machine
      long before = created(LOCAL);
      try (Sandbox here = sandboxes.create(spec)) {
        assertEquals(LOCAL, sandboxes.hostOf(here.id()).orElseThrow());
        assertEquals("ok", run(here, "echo ok"));
      }
      assertEquals(before + 1, created(LOCAL));

      // back: the host rejoins, and what it kept of the failed close is reaped
      remote.startDaemon();
      awaitUp(set, remote.uri());
      assertTrue(sandboxes.reap() >= 1, "the sandbox whose close failed is reaped");
      for (Sandbox sb : four) {
        if (sb != r) {
          sb.close();
        }
      }
      // the ready sandboxes there came from a warm image captured on that host
      assertEquals(1, remoteSandboxes.dropWarmImages());
    }
    assertEquals(0, remote.qemuProcesses(), "QEMU left on the remote host");
    assertEquals(
        List.of(),
        remote.poolFiles().stream().filter(f -> f.startsWith("sbx.")).toList(),
        "files left in the remote host's pool");
  }

  private static ConnectionException connectionFailure(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof ConnectionException c) {
        return c;
      }
    }
    return null;
  }

  private static void awaitUp(HostSet set, String uri) throws InterruptedException {
    long end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (System.nanoTime() < end) {
      if (set.hosts().stream().anyMatch(h -> h.uri().equals(uri) && h.up())) {
        return;
      }
      Thread.sleep(200);
    }
    throw new AssertionError(uri + " did not come back: " + set.hosts());
  }
}
