package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.Reaper;
import dev.agentvm.core.TestVms;
import dev.agentvm.internal.AgentVmPaths;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** kill -9 of a JVM whose pool runs an execution: the next start of the library reaps it all. */
class ExecutorKillIT extends RealLibvirtTest {
  private static List<String> named(Path dir, String prefix) throws Exception {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(prefix)).toList();
    }
  }

  @Test
  void theNextStartReapsVmsWorkspacesAndTheMemoryImage() throws Exception {
    String name = TestVms.name("killed");
    Process child = TestVms.startJvm(ExecutorOrphanMaker.class, name);
    try {
      BufferedReader out =
          new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
      StringBuilder seen = new StringBuilder();
      String line;
      while ((line = out.readLine()) != null && !line.startsWith("READY")) {
        seen.append(line).append('\n');
      }
      assertTrue(line != null, "child: " + seen);
      String runningOn = line.substring("READY ".length());
      child.destroyForcibly(); // SIGKILL: no hook, no cleanup
      assertTrue(child.waitFor(30, TimeUnit.SECONDS));
      Path state = AgentVmPaths.stateRoot();
      assertTrue(conn.domainNames().contains(runningOn), "left running by the dead JVM");
      assertFalse(named(state.resolve("workspaces"), name).isEmpty(), "workspaces left");
      assertFalse(named(state.resolve("images"), name).isEmpty(), "memory image left");

      Reaper.Report r;
      try (LibvirtConnection next = LibvirtConnection.open()) {
        // open() reaped already; a second pass finds nothing more
        r = Reaper.reapOrphans(next, java.time.Duration.ofSeconds(5));
      }
      System.out.println("second pass: " + r);
      assertEquals(List.of(), r.failures());
      assertEquals(List.of(), conn.domainNames().stream().filter(n -> n.startsWith(name)).toList());
      assertEquals(List.of(), named(state.resolve("run"), name), "runtime directories");
      assertEquals(List.of(), named(state.resolve("workspaces"), name), "workspaces");
      assertEquals(List.of(), named(state.resolve("images"), name), "memory image");
    } finally {
      child.destroyForcibly();
    }
  }
}
