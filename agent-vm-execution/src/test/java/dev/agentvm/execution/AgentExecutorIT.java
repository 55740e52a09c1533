package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VmCrashedException;
import dev.agentvm.core.agent.HeartbeatMonitor;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.execution.AnomalyDetector.Response;
import dev.agentvm.execution.sandbox.SandboxInfo;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.SandboxState;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.storage.OutputLimitException;
import dev.agentvm.storage.OutputLimits;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** AgentExecutor on real sandboxes: one per execution, some kept ready. */
class AgentExecutorIT extends RealLibvirtTest {
  private static Sandboxes sandboxes;
  private static final SimpleMeterRegistry registry = new SimpleMeterRegistry();
  private static final String PREFIX = TestVms.PREFIX + "exec-";
  @TempDir static Path tmp;

  @BeforeAll
  static void open() {
    sandboxes = Sandboxes.open(conn);
    sandboxes.bindTo(registry);
  }

  @AfterAll
  static void close() {
    if (sandboxes != null) {
      sandboxes.close();
      for (SandboxInfo i : sandboxes.list()) {
        if (i.id().startsWith(PREFIX)) {
          sandboxes.connect(i.id()).close();
        }
      }
    }
  }

  @Override
  public void noTestDomainsLeft() {
    // the ready sandboxes live for the class; RealLibvirtTest checks at the end
  }

  /** Sandboxes are closed by the execution's thread just before the result is returned. */
  private static void assertGoneSoon(String vm) throws InterruptedException {
    for (int i = 0; i < 300 && conn.domainNames().contains(vm); i++) {
      Thread.sleep(100);
    }
    assertFalse(conn.domainNames().contains(vm), vm + " is still there");
  }

  private AgentExecutor.Builder executor() {
    return AgentExecutor.builder(sandboxes)
        .sandbox(SandboxSpec.defaults().withNamePrefix(PREFIX))
        .keepReady(2)
        .meterRegistry(registry)
        .outputRoot(tmp.resolve("outputs"));
  }

  @Test
  void runsAScriptWithInputsStreamsOutputAuditsAndBringsBackFiles() throws Exception {
    Path auditFile = tmp.resolve("audit.jsonl");
    List<String> streamed = new CopyOnWriteArrayList<>();
    List<TaskState> states = new CopyOnWriteArrayList<>();
    String secret = "s3cr3t-" + System.nanoTime();
    try (JsonLinesAuditLog audit = JsonLinesAuditLog.open(auditFile);
        AgentExecutor ex =
            executor().auditLog(audit).listener((id, from, to, vm) -> states.add(to)).build()) {
      ExecutionResult r =
          ex.execute(
              ExecutionRequest.script(
                      "wc -w < /workspace/input/text.txt; pwd; echo \"$FOO\";"
                          + " [ \"$TOKEN\" = '"
                          + secret
                          + "' ] && echo token-ok;"
                          + " tr a-z A-Z < /workspace/input/text.txt > /workspace/output/upper.txt;"
                          + " mkdir -p /workspace/output/d && echo deep > /workspace/output/d/x.txt;"
                          + " echo warn >&2; exit 3",
                      "sh")
                  .input("text.txt", "the quick brown fox\n".getBytes(StandardCharsets.UTF_8))
                  .env("FOO", "bar")
                  .secretEnv("TOKEN", secret)
                  .timeout(Duration.ofSeconds(30))
                  .listener(
                      new OutputListener() {
                        @Override
                        public void onStdout(byte[] chunk) {
                          streamed.add(new String(chunk, StandardCharsets.UTF_8));
                        }
                      })
                  .build());
      assertEquals(TaskState.COMPLETED, r.state());
      assertEquals(3, r.exitCode());
      assertEquals("4\n/workspace/work\nbar\ntoken-ok\n", r.stdoutText());
      assertEquals("warn\n", r.stderrText());
      assertEquals(r.stdoutText(), String.join("", streamed), "streamed as it ran");
      assertEquals(
          List.of("d/x.txt", "upper.txt"),
          r.outputFiles().files().stream().map(f -> f.path()).toList());
      assertEquals(
          "THE QUICK BROWN FOX\n",
          Files.readString(r.outputFiles().directory().resolve("upper.txt")));
      assertTrue(r.vm().startsWith(PREFIX), r.vm());
      assertEquals(
          List.of(TaskState.PENDING, TaskState.PREPARING, TaskState.RUNNING, TaskState.COMPLETED),
          states);
      assertTrue(
          registry.get("agentvm.executions").tag("outcome", "completed").counter().count() >= 1);
      assertTrue(registry.get("agentvm.execution.duration").timer().count() >= 1);
      assertTrue(
          registry.get("agentvm.sandbox.create").tags("outcome", "success").timers().stream()
                  .mapToLong(t -> t.count())
                  .sum()
              >= 1);
    }
    String log = Files.readString(auditFile);
    assertFalse(log.contains(secret), "the secret's value never reaches the audit log");
    assertTrue(log.contains("\"secretEnv\":[\"TOKEN\"]"), log);
    List<String> events = new ArrayList<>();
    for (String line : log.lines().toList()) {
      events.add(line.replaceAll(".*\"event\":\"([^\"]+)\".*", "$1"));
    }
    assertEquals(
        List.of(
            "execution.submitted",
            "vm.acquired",
            "files.injected",
            "exec.started",
            "exec.finished",
            "output.extracted",
            "execution.completed",
            "vm.released"),
        events);
  }

  /**
   * A guest that knows a secret puts it in every place that reaches a host log line or the audit
   * log: names of skipped links and pipes, names of files over the limit, its error output. The log
   * lines written meanwhile (this JVM's standard error, where the tests' slf4j writes, DEBUG
   * included) and the audit records carry none of it.
   */
  @Test
  void aSecretTheGuestWritesIntoNamesAndErrorsReachesNoLogLine() throws Exception {
    String secret = "s3cr3t-" + System.nanoTime();
    List<AuditEvent> audit = new CopyOnWriteArrayList<>();
    java.io.PrintStream before = System.err;
    java.io.ByteArrayOutputStream captured = new java.io.ByteArrayOutputStream();
    java.io.PrintStream tee =
        new java.io.PrintStream(
            new java.io.OutputStream() {
              @Override
              public void write(int b) {
                before.write(b);
                synchronized (captured) {
                  captured.write(b);
                }
              }

              @Override
              public void write(byte[] b, int off, int len) {
                before.write(b, off, len);
                synchronized (captured) {
                  captured.write(b, off, len);
                }
              }
            },
            true,
            StandardCharsets.UTF_8);
    System.setErr(tee);
    ExecutionFailedException e;
    try (AgentExecutor ex = executor().auditLog(audit::add).build()) {
      String leak =
          "cd /workspace/output; ln -s /etc/passwd \"link-$TOKEN\"; mkfifo \"fifo-$TOKEN\";"
              + " for i in 1 2 3; do echo x > \"file-$i-$TOKEN\"; done; echo \"$TOKEN\" >&2";
      e =
          assertThrows(
              ExecutionFailedException.class,
              () ->
                  ex.execute(
                      ExecutionRequest.script(leak)
                          .secretEnv("TOKEN", secret)
                          .outputFiles(new OutputLimits(2, 1 << 20, 1 << 20))
                          .timeout(Duration.ofSeconds(30))
                          .build()));
    } finally {
      System.setErr(before);
    }
    assertEquals("extract", e.step(), e.toString());
    String logged;
    synchronized (captured) {
      logged = captured.toString(StandardCharsets.UTF_8);
    }
    assertTrue(logged.contains("RUNNING -> FAILED"), "the run was logged meanwhile:\n" + logged);
    assertFalse(logged.contains(secret), "a log line carries the secret:\n" + logged);
    assertFalse(audit.toString().contains(secret), "the audit carries the secret: " + audit);
    assertTrue(
        audit.stream().anyMatch(a -> a.event().equals("execution.failed")), audit.toString());
  }

  @Test
  void aTimeoutStopsTheTreeAndTheVmIsNeverReused() throws Exception {
    try (AgentExecutor ex = executor().build()) {
      ExecutionResult r =
          ex.execute(
              ExecutionRequest.script("sleep 300 & sleep 300", "sh")
                  .timeout(Duration.ofSeconds(2))
                  .build());
      assertEquals(TaskState.TIMED_OUT, r.state());
      assertTrue(r.timedOut());
      ExecutionResult next = ex.execute(ExecutionRequest.script("hostname").build());
      assertNotEquals(r.vm(), next.vm(), "the timed-out sandbox was closed, not used again");
      assertEquals(next.vm(), next.stdoutText().trim(), "each sandbox has its own hostname");
      assertGoneSoon(r.vm());
    }
  }

  @Test
  void concurrentExecutionsEachGetTheirOwnVmAndOutput() throws Exception {
    try (AgentExecutor ex = executor().build()) {
      List<Execution> runs = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        runs.add(
            ex.submit(
                ExecutionRequest.script(
                        "cat /workspace/input/n.txt > /workspace/output/n.txt; cat /workspace/input/n.txt")
                    .input("n.txt", Integer.toString(i).getBytes(StandardCharsets.UTF_8))
                    .build()));
      }
      Set<String> vms = new HashSet<>();
      for (int i = 0; i < 4; i++) {
        ExecutionResult r = runs.get(i).result().get(3, TimeUnit.MINUTES);
        assertEquals(Integer.toString(i), r.stdoutText());
        assertEquals(
            Integer.toString(i), Files.readString(r.outputFiles().directory().resolve("n.txt")));
        vms.add(r.vm());
      }
      assertEquals(4, vms.size(), "four VMs: " + vms);
    }
  }

  @Test
  void qemuDyingFailsTheExecutionAtOnceAndTheNextOneRuns() throws Exception {
    CountDownLatch started = new CountDownLatch(1);
    java.util.concurrent.atomic.AtomicReference<String> vm =
        new java.util.concurrent.atomic.AtomicReference<>();
    try (AgentExecutor ex = executor().listener((id, from, to, name) -> vm.set(name)).build()) {
      Execution e =
          ex.submit(
              ExecutionRequest.script("echo started; sleep 300")
                  .listener(
                      new OutputListener() {
                        @Override
                        public void onStdout(byte[] chunk) {
                          started.countDown();
                        }
                      })
                  .build());
      assertTrue(started.await(2, TimeUnit.MINUTES));
      long pid =
          Long.parseLong(
              Files.readString(Path.of("/run/libvirt/qemu/" + vm.get() + ".pid")).trim());
      long t0 = System.nanoTime();
      ProcessHandle.of(pid).orElseThrow().destroyForcibly();
      CompletionException failure =
          assertThrows(CompletionException.class, () -> e.result().join());
      long ms = (System.nanoTime() - t0) / 1_000_000;
      ExecutionFailedException ee =
          assertInstanceOf(ExecutionFailedException.class, failure.getCause());
      assertEquals("exec", ee.step());
      assertInstanceOf(VmCrashedException.class, ee.getCause(), ee.toString());
      assertTrue(ms < 5000, "failed " + ms + " ms after QEMU died, well before any heartbeat");
      System.out.printf("execution failed %d ms after QEMU was killed%n", ms);
      assertGoneSoon(vm.get());
      ExecutionResult after = ex.execute(ExecutionRequest.script("echo fine").build());
      assertEquals("fine\n", after.stdoutText());
      assertTrue(registry.get("agentvm.vm.crashes").counter().count() >= 1);
    }
  }

  @Test
  void aHungAgentIsFoundByTheHeartbeatAndTheVmDiscarded() throws Exception {
    try (AgentExecutor ex =
        executor()
            .heartbeat(
                new HeartbeatMonitor.Settings(
                    Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofSeconds(3)))
            .build()) {
      long t0 = System.nanoTime();
      ExecutionFailedException e =
          assertThrows(
              ExecutionFailedException.class,
              () ->
                  ex.execute(
                      ExecutionRequest.script("kill -STOP $(pidof java); sleep 300")
                          .timeout(Duration.ofMinutes(2))
                          .build()));
      long ms = (System.nanoTime() - t0) / 1_000_000;
      assertTrue(e.getMessage().contains("stopped answering"), e.getMessage());
      assertTrue(ms < 30_000, "found in " + ms + " ms");
    }
  }

  @Test
  void cancelStopsARunningExecution() throws Exception {
    try (AgentExecutor ex = executor().build()) {
      Execution e = ex.submit(ExecutionRequest.script("sleep 300").build());
      for (int i = 0; i < 2400 && e.state() != TaskState.RUNNING; i++) {
        Thread.sleep(50);
      }
      assertEquals(TaskState.RUNNING, e.state());
      long t0 = System.nanoTime();
      e.cancel();
      CompletionException c = assertThrows(CompletionException.class, () -> e.result().join());
      assertInstanceOf(ExecutionCancelledException.class, c.getCause());
      assertEquals(TaskState.CANCELLED, e.state());
      assertTrue((System.nanoTime() - t0) / 1_000_000 < 15_000);
    }
  }

  @Test
  void anomalyRulesKillTheExecutionOrQuarantineTheVm() throws Exception {
    AnomalyDetector killer =
        AnomalyDetector.builder().maxProcesses(40, Response.KILL_EXECUTION).build();
    try (AgentExecutor ex = executor().anomalyDetector(killer).build()) {
      ExecutionFailedException e =
          assertThrows(
              ExecutionFailedException.class,
              () ->
                  ex.execute(
                      ExecutionRequest.script(
                              "i=0; while [ $i -lt 60 ]; do sleep 300 & i=$((i+1)); done; sleep 300")
                          .timeout(Duration.ofSeconds(60))
                          .build()));
      assertTrue(e.getMessage().contains("process-count"), e.getMessage());
    }
    AnomalyDetector quarantine =
        AnomalyDetector.builder().maxOutputBytesPerSecond(100_000, Response.QUARANTINE_VM).build();
    String quarantined;
    try (AgentExecutor ex = executor().anomalyDetector(quarantine).build()) {
      ExecutionResult r =
          ex.execute(
              ExecutionRequest.script("head -c 3000000 /dev/zero | tr '\\0' x; sleep 3")
                  .outputLimit(4 << 20)
                  .build());
      assertEquals(TaskState.COMPLETED, r.state());
      assertEquals(1, ex.quarantined().size());
      quarantined = ex.quarantined().get(0);
      String id = quarantined;
      assertEquals(
          List.of(SandboxState.PAUSED),
          sandboxes.list().stream().filter(i -> i.id().equals(id)).map(i -> i.state()).toList(),
          "kept paused (on disk) for inspection");
      assertFalse(conn.domainNames().contains(quarantined), "a paused sandbox uses no VM");
    }
    assertTrue(
        sandboxes.list().stream().noneMatch(i -> i.id().equals(quarantined)),
        "closing the executor removes it");
  }

  /**
   * The guest's own reports cannot hide what it costs: a busy loop is flagged from the CPU time
   * libvirt measured for the VM, against the baseline of earlier runs of the same template.
   */
  @Test
  void aBusyGuestIsFlaggedFromTheCpuTimeTheHostMeasured() throws Exception {
    AnomalyDetector d =
        AnomalyDetector.builder()
            .window(20, 5)
            .minDeviation(Duration.ofSeconds(30), Duration.ofSeconds(1), 1L << 30)
            .build();
    List<AuditEvent> audit = new java.util.concurrent.CopyOnWriteArrayList<>();
    try (AgentExecutor ex = executor().anomalyDetector(d).auditLog(audit::add).build()) {
      for (int i = 0; i < 6; i++) {
        ex.execute(ExecutionRequest.script("true").build());
      }
      ExecutionResult r =
          ex.execute(
              ExecutionRequest.script(
                      "end=$(($(date +%s)+5)); while [ $(date +%s) -lt $end ]; do :; done")
                  .build());
      assertEquals(TaskState.COMPLETED, r.state());
      List<String> rules =
          audit.stream()
              .filter(e -> e.executionId().equals(r.id()) && e.event().equals("anomaly.detected"))
              .map(e -> String.valueOf(e.details().get("rule")))
              .toList();
      // wall time needs 30 s more than usual here: only the CPU the host saw can flag it
      assertEquals(List.of("cpu-zscore"), rules);
      Object cpu =
          audit.stream()
              .filter(e -> e.executionId().equals(r.id()) && e.event().equals("exec.finished"))
              .findFirst()
              .orElseThrow()
              .details()
              .get("hostCpuMillis");
      // the loop spins 4 to 5 s of wall time; a contended host gives the VM less of it as CPU
      assertTrue(((Number) cpu).longValue() >= 2000, "host CPU of the busy run: " + cpu);
    }
  }

  @Test
  void aForkBombOrAnEndlessLoopIsStoppedAtTheDeadlineAndItsVmDestroyed() throws Exception {
    List<String> vms = new CopyOnWriteArrayList<>();
    // a drowned guest is found dead after 6 s of silence instead of the default 10
    HeartbeatMonitor.Settings quick =
        new HeartbeatMonitor.Settings(
            Duration.ofSeconds(1), Duration.ofSeconds(3), Duration.ofSeconds(6));
    try (AgentExecutor ex =
        executor().heartbeat(quick).listener((id, from, to, vm) -> vms.add(vm)).build()) {
      for (String code :
          List.of("bomb() { bomb | bomb & }; bomb; while :; do :; done", "while :; do :; done")) {
        long t0 = System.nanoTime();
        try {
          ExecutionResult r =
              ex.execute(
                  ExecutionRequest.script(code, "sh").timeout(Duration.ofSeconds(3)).build());
          assertEquals(TaskState.TIMED_OUT, r.state(), code);
        } catch (ExecutionFailedException e) {
          // a guest drowned in processes may stop answering first: the heartbeat says so
          assertTrue(e.getMessage().contains("stopped answering"), e.getMessage());
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        System.out.printf("%s: stopped after %d ms%n", code, ms);
        assertTrue(ms < 60_000, code + " ran " + ms + " ms");
        assertGoneSoon(vms.get(vms.size() - 1));
      }
      assertEquals("ok\n", ex.execute(ExecutionRequest.script("echo ok").build()).stdoutText());
    }
  }

  @Test
  void withoutReadySandboxesEachExecutionCreatesItsOwn() throws Exception {
    String prefix = TestVms.PREFIX + "exec-cold-";
    try (AgentExecutor ex =
        AgentExecutor.builder(sandboxes)
            .sandbox(SandboxSpec.defaults().withNamePrefix(prefix))
            .outputRoot(tmp.resolve("cold-outputs"))
            .build()) {
      ExecutionResult r =
          ex.execute(
              ExecutionRequest.script(
                      "cat /workspace/input/sub/a > /workspace/output/b; grep -c ' /workspace '"
                          + " /proc/mounts")
                  .input("sub/a", "x".getBytes(StandardCharsets.UTF_8))
                  .build());
      assertEquals(TaskState.COMPLETED, r.state());
      assertTrue(r.vm().startsWith(prefix), r.vm());
      assertEquals("x", Files.readString(r.outputFiles().directory().resolve("b")));
      assertEquals("1\n", r.stdoutText(), "the workspace is the sandbox's own disk");
      assertGoneSoon(r.vm());
    }
  }

  @Test
  void theWorkspaceIsCappedAndAnOverLimitOutputLeavesNothing() throws Exception {
    try (AgentExecutor ex = executor().build()) {
      ExecutionResult full =
          ex.execute(
              ExecutionRequest.script(
                      "dd if=/dev/zero of=/workspace/output/big bs=1M count=400 2>&1;"
                          + " rm -f /workspace/output/big")
                  .timeout(Duration.ofMinutes(2))
                  .build());
      assertTrue(
          full.stdoutText().contains("No space left"), "a 256 MiB workspace: " + full.stdoutText());

      Path dest = tmp.resolve("over-limit");
      ExecutionFailedException e =
          assertThrows(
              ExecutionFailedException.class,
              () ->
                  ex.execute(
                      ExecutionRequest.script(
                              "echo small > /workspace/output/a;"
                                  + " head -c 3000000 /dev/zero > /workspace/output/b")
                          .outputFiles(new OutputLimits(10, 2_000_000, 2_000_000))
                          .outputDirectory(dest)
                          .build()));
      assertEquals("extract", e.step());
      assertInstanceOf(OutputLimitException.class, e.getCause(), e.toString());
      assertFalse(Files.exists(dest), "nothing delivered");
      try (var left = Files.list(tmp)) {
        assertEquals(
            List.of(),
            left.map(p -> p.getFileName().toString()).filter(n -> n.contains("partial")).toList(),
            "no partial copy left");
      }
    }
  }

  @Test
  void aFileThatKeepsGrowingAfterTheScanIsCutAtTheBudget() throws Exception {
    // a detached writer outlives its command (setsid: not in the command's process group) and
    // appends while the host copies; whatever it does, the host never writes more than the budget
    long budget = 4_000_000;
    try (AgentExecutor ex = executor().build()) {
      Path dest = tmp.resolve("growing");
      try {
        ExecutionResult r =
            ex.execute(
                ExecutionRequest.script(
                        "echo x > /workspace/output/grow; setsid sh -c 'while :; do head -c"
                            + " 65536 /dev/zero >> /workspace/output/grow; done' </dev/null"
                            + " >/dev/null 2>&1 & sleep 1")
                    .outputFiles(new OutputLimits(10, budget, budget))
                    .outputDirectory(dest)
                    .build());
        assertTrue(r.outputFiles().totalBytes() <= budget, r.outputFiles().toString());
        System.out.printf("growing file extracted at %d bytes%n", r.outputFiles().totalBytes());
      } catch (ExecutionFailedException e) {
        assertEquals("extract", e.step());
        assertInstanceOf(OutputLimitException.class, e.getCause(), e.toString());
        assertFalse(Files.exists(dest));
        System.out.println("growing file refused: " + e.getCause().getMessage());
      }
    }
  }
}
