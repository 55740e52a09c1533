package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.VmCrashedException;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.HeartbeatMonitor;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.execution.AnomalyDetector.Response;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.storage.ExtractedOutput;
import dev.agentvm.storage.OutputLimitException;
import dev.agentvm.storage.OutputLimits;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The executor's workflow against a fake machine: states, audit, meters, every failure step. */
class AgentExecutorTest {
  @TempDir Path tmp;
  private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
  private final List<AuditEvent> audit = new CopyOnWriteArrayList<>();
  private final List<TaskState> states = new CopyOnWriteArrayList<>();
  private final List<FakeVm> made = new CopyOnWriteArrayList<>();
  private volatile java.util.function.Consumer<FakeVm> setup = vm -> {};

  /** A machine whose command does what {@code behaviour} says with the request. */
  private final class FakeVm implements ExecutionVm {
    final String name = "fake-" + made.size();
    final Map<String, byte[]> files = new java.util.concurrent.ConcurrentHashMap<>();
    final List<String> dirs = new CopyOnWriteArrayList<>();
    final Function<ExecRequest, CompletableFuture<ExecResult>> behaviour;
    volatile boolean closed;
    volatile boolean quarantined;
    volatile boolean killed;
    volatile boolean answersStatus = true;
    volatile int processes = 3;
    volatile Duration cpuPerRun = Duration.ofMillis(100);
    volatile Duration cpu = Duration.ZERO;
    volatile @org.jspecify.annotations.Nullable RuntimeException extractFailure;
    volatile @org.jspecify.annotations.Nullable ExecRequest ran;

    FakeVm(Function<ExecRequest, CompletableFuture<ExecResult>> behaviour) {
      this.behaviour = behaviour;
    }

    @Override
    public String name() {
      return name;
    }

    @Override
    public void write(String guestPath, byte[] content) {
      files.put(guestPath, content.clone());
    }

    @Override
    public void upload(Path source, String guestPath) throws IOException {
      files.put(guestPath, java.nio.file.Files.readAllBytes(source));
    }

    @Override
    public void mkdirs(String guestDir) {
      dirs.add(guestDir);
    }

    @Override
    public Command start(ExecRequest request, OutputListener listener) {
      ran = request;
      cpu = cpu.plus(cpuPerRun);
      listener.onStdout("out".getBytes(StandardCharsets.UTF_8));
      CompletableFuture<ExecResult> r = behaviour.apply(request);
      return new Command() {
        @Override
        public CompletableFuture<ExecResult> result() {
          return r;
        }

        @Override
        public void kill() {
          killed = true;
          r.complete(AgentExecutorTest.result(137, false));
        }
      };
    }

    @Override
    public dev.agentvm.core.VmStats hostStats() {
      return new dev.agentvm.core.VmStats(cpu, 200_000);
    }

    @Override
    public StatusReport status(Duration deadline) throws IOException {
      if (!answersStatus) {
        throw new dev.agentvm.core.agent.AgentTimeoutException("no answer");
      }
      return new StatusReport(1000, 262144, 131072, 0.5, processes, 1);
    }

    @Override
    public ExtractedOutput extract(String guestDir, Path dest, OutputLimits limits)
        throws IOException {
      RuntimeException f = extractFailure;
      if (f != null) {
        throw f;
      }
      java.nio.file.Files.createDirectories(dest);
      return new ExtractedOutput(dest, List.of(), List.of("link (symlink)"), 0);
    }

    @Override
    public void quarantine() {
      quarantined = true;
    }

    @Override
    public void close() {
      closed = true;
    }
  }

  private static ExecResult result(int exit, boolean timedOut) {
    return new ExecResult(
        exit,
        0,
        Duration.ofMillis(5),
        timedOut,
        false,
        "out".getBytes(StandardCharsets.UTF_8),
        new byte[0],
        false,
        false);
  }

  private AgentExecutor.Builder executor(
      Function<ExecRequest, CompletableFuture<ExecResult>> behaviour) {
    return AgentExecutor.builder(
            () -> {
              FakeVm vm = new FakeVm(behaviour);
              setup.accept(vm);
              made.add(vm);
              return vm;
            })
        .meterRegistry(registry)
        .name("unit")
        .auditLog(audit::add)
        .listener((id, from, to, vm) -> states.add(to))
        .outputRoot(tmp)
        .sampleInterval(Duration.ofMillis(20));
  }

  /** Machines are closed in the background right after the result. */
  private static boolean closedSoon(FakeVm vm) {
    for (int i = 0; i < 500 && !vm.closed; i++) {
      sleep(10);
    }
    return vm.closed;
  }

  private List<String> events() {
    for (int i = 0;
        i < 500 && audit.stream().noneMatch(e -> e.event().equals("vm.released"));
        i++) {
      sleep(10);
    }
    return audit.stream().map(AuditEvent::event).toList();
  }

  private double executions(String outcome) {
    return registry
        .get("agentvm.executions")
        .tags("executor", "unit", "outcome", outcome)
        .counter()
        .count();
  }

  @Test
  void aRunWritesInputsRunsInTheWorkdirExtractsAndClosesItsMachine() throws Exception {
    Path src = tmp.resolve("src.txt");
    java.nio.file.Files.writeString(src, "from a file");
    List<String> streamed = new ArrayList<>();
    try (AgentExecutor ex =
        executor(r -> CompletableFuture.completedFuture(result(0, false))).build()) {
      ExecutionResult r =
          ex.execute(
              ExecutionRequest.script("cat x", "sh")
                  .input("a/b.txt", "bytes".getBytes(StandardCharsets.UTF_8))
                  .input("c.txt", src)
                  .env("K", "V")
                  .listener(
                      new OutputListener() {
                        @Override
                        public void onStdout(byte[] chunk) {
                          streamed.add(new String(chunk, StandardCharsets.UTF_8));
                        }
                      })
                  .build());
      assertEquals(TaskState.COMPLETED, r.state());
      assertEquals(List.of("out"), streamed);
      FakeVm vm = made.get(0);
      assertEquals(
          "bytes", new String(vm.files.get("/workspace/input/a/b.txt"), StandardCharsets.UTF_8));
      assertEquals(
          "from a file",
          new String(vm.files.get("/workspace/input/c.txt"), StandardCharsets.UTF_8));
      assertTrue(vm.dirs.containsAll(List.of("/workspace/work", "/workspace/output")));
      assertEquals("/workspace/work", vm.ran.cwd());
      assertEquals("V", vm.ran.env().get("K"));
      assertTrue(closedSoon(vm), "the machine is closed after the run");
      assertEquals(vm.name(), r.vm());
      assertEquals(tmp.resolve(r.id()), r.outputFiles().directory());
      assertEquals(
          List.of(TaskState.PENDING, TaskState.PREPARING, TaskState.RUNNING, TaskState.COMPLETED),
          states);
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
          events());
      assertEquals(1.0, executions("completed"));
      assertEquals(
          0.0, registry.get("agentvm.vm.crashes").tag("executor", "unit").counter().count());
    }
  }

  @Test
  void aTimedOutCommandEndsTimedOut() {
    try (AgentExecutor ex =
        executor(r -> CompletableFuture.completedFuture(result(-1, true))).build()) {
      ExecutionResult r = ex.execute(ExecutionRequest.script("sleep 9").build());
      assertEquals(TaskState.TIMED_OUT, r.state());
      assertTrue(closedSoon(made.get(0)));
      assertEquals(1.0, executions("timed_out"));
    }
  }

  @Test
  void aFailedAcquireFailsTheAcquireStep() {
    try (AgentExecutor ex =
        AgentExecutor.builder(
                () -> {
                  throw new IllegalStateException("no room");
                })
            .meterRegistry(registry)
            .name("unit")
            .build()) {
      ExecutionFailedException e =
          assertThrows(
              ExecutionFailedException.class,
              () -> ex.execute(ExecutionRequest.script("x").build()));
      assertEquals("acquire", e.step());
      assertTrue(e.getMessage().contains("no room"), e.getMessage());
      assertEquals(1.0, executions("failed"));
    }
  }

  @Test
  void aCrashIsCountedAndNamedAndTheMachineClosed() {
    try (AgentExecutor ex =
        executor(
                r ->
                    CompletableFuture.failedFuture(
                        new VmCrashedException("the VM of sandbox x is CRASHED", null)))
            .build()) {
      ExecutionFailedException e =
          assertThrows(
              ExecutionFailedException.class,
              () -> ex.execute(ExecutionRequest.script("x").build()));
      assertEquals("exec", e.step());
      assertInstanceOf(VmCrashedException.class, e.getCause());
      assertTrue(closedSoon(made.get(0)));
      assertEquals(
          1.0, registry.get("agentvm.vm.crashes").tag("executor", "unit").counter().count());
    }
    assertTrue(events().contains("execution.failed"));
  }

  @Test
  void aGuestThatStopsAnsweringIsFoundHung() {
    try (AgentExecutor ex =
        executor(r -> new CompletableFuture<>())
            .heartbeat(
                new HeartbeatMonitor.Settings(
                    Duration.ofMillis(50), Duration.ofMillis(100), Duration.ofMillis(300)))
            .build()) {
      Execution e = ex.submit(ExecutionRequest.script("x").build());
      for (int i = 0; i < 200 && made.isEmpty(); i++) {
        sleep(10);
      }
      made.get(0).answersStatus = false;
      java.util.concurrent.ExecutionException c =
          assertThrows(
              java.util.concurrent.ExecutionException.class,
              () -> e.result().get(10, TimeUnit.SECONDS));
      assertTrue(c.getCause().getMessage().contains("stopped answering"), c.getCause().toString());
    } catch (Exception x) {
      throw new AssertionError(x);
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Test
  void cancelKillsTheCommand() throws Exception {
    try (AgentExecutor ex = executor(r -> new CompletableFuture<>()).build()) {
      Execution e = ex.submit(ExecutionRequest.script("sleep 300").build());
      for (int i = 0; i < 500 && e.state() != TaskState.RUNNING; i++) {
        Thread.sleep(10);
      }
      e.cancel();
      CompletionException c = assertThrows(CompletionException.class, () -> e.result().join());
      assertInstanceOf(ExecutionCancelledException.class, c.getCause());
      assertEquals(TaskState.CANCELLED, e.state());
      assertTrue(made.get(0).killed);
      assertTrue(closedSoon(made.get(0)));
      assertEquals(1.0, executions("cancelled"));
    }
  }

  @Test
  void anObserverThatThrowsNeitherStopsTheRunNorSilencesTheOthers() {
    try (AgentExecutor ex =
        executor(r -> CompletableFuture.completedFuture(result(0, false)))
            .listener(
                (id, from, to, vm) -> {
                  throw new IllegalStateException("a broken listener");
                })
            .build()) {
      assertEquals(TaskState.COMPLETED, ex.execute(ExecutionRequest.script("x").build()).state());
      assertEquals(1.0, executions("completed"));
    }
    assertEquals(
        List.of(TaskState.PENDING, TaskState.PREPARING, TaskState.RUNNING, TaskState.COMPLETED),
        states);
    assertTrue(events().contains("execution.completed"));
  }

  @Test
  void aCancelWhileWaitingForASlotIsAuditedAndCounted() throws Exception {
    try (AgentExecutor ex = executor(r -> new CompletableFuture<>()).maxConcurrent(1).build()) {
      Execution first = ex.submit(ExecutionRequest.script("sleep 300").build());
      for (int i = 0; i < 500 && first.state() != TaskState.RUNNING; i++) {
        Thread.sleep(10);
      }
      Execution waiting = ex.submit(ExecutionRequest.script("sleep 300").build());
      Thread.sleep(200);
      assertEquals(TaskState.PENDING, waiting.state());
      waiting.cancel();
      CompletionException c =
          assertThrows(CompletionException.class, () -> waiting.result().join());
      assertInstanceOf(ExecutionCancelledException.class, c.getCause());
      assertEquals(1.0, executions("cancelled"));
      assertTrue(
          audit.stream()
              .anyMatch(
                  e ->
                      e.event().equals("execution.cancelled")
                          && e.executionId().equals(waiting.id())
                          && "acquire".equals(e.details().get("step"))),
          audit.toString());
      first.cancel();
    }
  }

  @Test
  void anomalyRulesKillOrQuarantine() {
    AnomalyDetector killer =
        AnomalyDetector.builder().maxProcesses(10, Response.KILL_EXECUTION).build();
    try (AgentExecutor ex =
        executor(r -> new CompletableFuture<>()).anomalyDetector(killer).build()) {
      Execution e = ex.submit(ExecutionRequest.script("x").build());
      for (int i = 0; i < 200 && made.isEmpty(); i++) {
        sleep(10);
      }
      made.get(0).processes = 50;
      CompletionException c = assertThrows(CompletionException.class, () -> e.result().join());
      assertTrue(c.getCause().getMessage().contains("process-count"), c.getCause().toString());
      assertTrue(made.get(0).killed);
    }
    AnomalyDetector quarantine =
        AnomalyDetector.builder().maxProcesses(10, Response.QUARANTINE_VM).build();
    FakeVm kept;
    try (AgentExecutor ex =
        executor(
                r -> {
                  made.get(made.size() - 1).processes = 50;
                  return CompletableFuture.supplyAsync(
                      () -> result(0, false),
                      CompletableFuture.delayedExecutor(200, TimeUnit.MILLISECONDS));
                })
            .anomalyDetector(quarantine)
            .build()) {
      ExecutionResult r = ex.execute(ExecutionRequest.script("x").build());
      assertEquals(TaskState.COMPLETED, r.state());
      kept = made.get(made.size() - 1);
      assertTrue(kept.quarantined);
      assertFalse(kept.closed, "kept for inspection");
      assertEquals(List.of(kept.name()), ex.quarantined());
    }
    assertTrue(kept.closed, "closing the executor removes quarantined machines");
    assertTrue(events().contains("vm.quarantined"));
  }

  @Test
  void aGuestThatLooksIdleIsJudgedByTheCpuTheHostMeasuredAndQuarantinesAreCapped() {
    AnomalyDetector d =
        AnomalyDetector.builder().window(20, 5).zScore(3, Response.QUARANTINE_VM).build();
    try (AgentExecutor ex =
        executor(r -> CompletableFuture.completedFuture(result(0, false)))
            .anomalyDetector(d)
            .maxQuarantined(1)
            .build()) {
      for (int i = 0; i < 8; i++) {
        assertEquals(TaskState.COMPLETED, ex.execute(ExecutionRequest.script("x").build()).state());
      }
      assertEquals(List.of(), ex.quarantined());
      // the guest's STATUS says load 0.5 and 3 processes, as always; the host saw 20 s of CPU
      setup = vm -> vm.cpuPerRun = Duration.ofSeconds(20);
      ex.execute(ExecutionRequest.script("x").build());
      FakeVm first = made.get(made.size() - 1);
      assertEquals(List.of(first.name()), ex.quarantined());
      assertEquals(
          1.0,
          registry.get("agentvm.executor.quarantined").tag("executor", "unit").gauge().value());
      ex.execute(ExecutionRequest.script("x").build());
      FakeVm second = made.get(made.size() - 1);
      assertEquals(List.of(second.name()), ex.quarantined(), "the cap removed the oldest");
      assertTrue(first.closed);
      assertEquals(
          2.0,
          registry
              .get("agentvm.anomalies")
              .tags("executor", "unit", "rule", "cpu-zscore")
              .counter()
              .count());
    }
    assertTrue(
        audit.stream()
            .anyMatch(
                e ->
                    e.event().equals("exec.finished")
                        && Long.valueOf(20_000).equals(e.details().get("hostCpuMillis"))),
        "the host's CPU time is in the audit record");
  }

  /** A machine that holds something the caller uses next is closed before the result returns. */
  @Test
  void aSourceThatNeedsItClosesTheMachineBeforeReturning() {
    ExecutionVm.Source inline =
        new ExecutionVm.Source() {
          @Override
          public ExecutionVm acquire() {
            FakeVm vm = new FakeVm(r -> CompletableFuture.completedFuture(result(0, false)));
            made.add(vm);
            return vm;
          }

          @Override
          public boolean closesBeforeReturning() {
            return true;
          }
        };
    try (AgentExecutor ex = AgentExecutor.builder(inline).outputRoot(tmp).build()) {
      ex.execute(ExecutionRequest.script("x").build());
      assertTrue(made.get(0).closed, "closed before execute returned, not in the background");
    }
  }

  @Test
  void anExtractionOverTheLimitsFailsTheExtractStep() {
    setup = vm -> vm.extractFailure = new OutputLimitException("output has more than 1 files");
    try (AgentExecutor ex =
        executor(r -> CompletableFuture.completedFuture(result(0, false))).build()) {
      ExecutionFailedException e =
          assertThrows(
              ExecutionFailedException.class,
              () -> ex.execute(ExecutionRequest.script("x").build()));
      assertEquals("extract", e.step());
      assertInstanceOf(OutputLimitException.class, e.getCause());
      assertTrue(closedSoon(made.get(0)));
      assertEquals(1.0, executions("failed"));
    }
  }

  @Test
  void inputPathsThatCouldLeaveTheInputDirectoryAreRefused() {
    for (String bad : List.of("../x", "/etc/passwd", "a/../../b", "", "a//b")) {
      assertThrows(
          IllegalArgumentException.class,
          () -> ExecutionRequest.script("x").input(bad, new byte[1]).build(),
          bad);
    }
  }
}
