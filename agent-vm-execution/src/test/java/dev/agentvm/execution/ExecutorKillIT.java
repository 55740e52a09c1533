package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.execution.sandbox.Sandboxes;
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

/**
 * kill -9 of a JVM whose executor runs an execution and keeps a sandbox ready: the next start of
 * the library reaps both sandboxes, their VMs and their directories.
 */
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
  void theNextStartReapsTheSandboxesTheirVmsAndDisks() throws Exception {
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
      // the ready one is made in the background: wait until both VMs exist
      for (int i = 0;
          i < 1200 && conn.domainNames().stream().filter(n -> n.startsWith(name)).count() < 2;
          i++) {
        Thread.sleep(100);
      }
      child.destroyForcibly(); // SIGKILL: no hook, no cleanup
      assertTrue(child.waitFor(30, TimeUnit.SECONDS));
      Path root = AgentVmPaths.stateRoot().resolve("sandboxes");
      assertTrue(conn.domainNames().contains(runningOn), "left running by the dead JVM");
      assertEquals(
          2,
          conn.domainNames().stream().filter(n -> n.startsWith(name)).count(),
          "the running and the ready sandbox");
      assertEquals(2, named(root, name).size(), "their directories");

      try (Sandboxes next = Sandboxes.open(conn)) {
        assertEquals(List.of(), named(root, name), "reaped when the library starts");
        assertTrue(next.list().stream().noneMatch(i -> i.id().startsWith(name)));
      }
      assertEquals(List.of(), conn.domainNames().stream().filter(n -> n.startsWith(name)).toList());
    } finally {
      child.destroyForcibly();
    }
  }
}
