package dev.agentvm.junit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.ExecutionRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.testkit.engine.EngineTestKit;

/** Runs sample test classes that use the extension, and checks what they leave behind. */
class AgentVmExtensionIT {
  @TempDir Path logs;

  /** Run by the test kit only (its name does not end in Test or IT). */
  @AgentVmTest
  static class SampleUsage {
    @AgentVm static AgentExecutor executor;

    @AgentVm(packages = "python3")
    static VM shared;

    @AgentVm VM perTest;

    @Test
    void executorRunsCodeAndVmsAreRunning() throws Exception {
      assertEquals(
          "hi\n", executor.execute(ExecutionRequest.script("echo hi").build()).stdoutText());
      assertEquals(1, AgentVmExtension.openSharedConnections(), "one connection for the run");
      assertEquals(VMState.RUNNING, shared.state());
      assertEquals(VMState.RUNNING, perTest.state());
      assertNotSame(shared, perTest);
      assertEquals(
          "3\n",
          shared
              .awaitAgent(Duration.ofSeconds(10))
              .exec(dev.agentvm.core.agent.ExecRequest.command("python3", "-c", "print(1 + 2)"))
              .stdoutText(),
          "the python3 flavour");
      assertEquals(
          "ok\n",
          perTest
              .awaitAgent(Duration.ofSeconds(10))
              .exec(dev.agentvm.core.agent.ExecRequest.script("echo ok", "sh"))
              .stdoutText());
    }

    @Test
    void failsOnPurpose() {
      assertNotNull(perTest);
      throw new AssertionError("this test fails so that the extension keeps the console log");
    }
  }

  @Test
  void fillsFieldsRemovesEverythingAndKeepsLogsOfFailedTests() throws Exception {
    assertEquals(0, AgentVmExtension.openSharedConnections());
    System.setProperty("agentvm.junit.logDir", logs.toString());
    try {
      var results =
          EngineTestKit.engine("junit-jupiter").selectors(selectClass(SampleUsage.class)).execute();
      // a callback that fails (e.g. NoSuchMethodError on a JUnit line without a method it calls)
      // fails the sample class, not its tests: name the cause instead of "started 0"
      assertEquals(
          List.of(),
          results.containerEvents().failed().stream()
              .map(
                  e ->
                      e.getPayload(TestExecutionResult.class)
                          .flatMap(TestExecutionResult::getThrowable)
                          .map(Throwable::toString)
                          .orElse(e.toString()))
              .toList(),
          "the sample class failed");
      results.testEvents().assertStatistics(s -> s.started(2).succeeded(1).failed(1));
      // JUnit closes the run's connection when the engine ends (5.10 to 5.12 close only a
      // Store.CloseableResource, later lines any AutoCloseable)
      assertEquals(0, AgentVmExtension.openSharedConnections(), "the run's connection is closed");
    } finally {
      System.clearProperty("agentvm.junit.logDir");
    }
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      List<String> left =
          conn.domainNames().stream().filter(n -> n.startsWith("agentvm-junit-")).toList();
      assertEquals(List.of(), left, "the extension removed every VM, also after the failure");
    }
    try (Stream<Path> s = Files.list(logs)) {
      List<Path> kept = s.toList();
      assertEquals(1, kept.size(), kept.toString());
      assertTrue(
          kept.get(0).getFileName().toString().startsWith("failsOnPurpose"), kept.toString());
      assertTrue(Files.readString(kept.get(0)).contains("agentvm-init"));
    }
  }
}
