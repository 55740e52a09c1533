package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.protocol.Protocol;
import dev.agentvm.storage.OutputLimitException;
import dev.agentvm.storage.OutputLimits;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real guest whose agent is replaced by a lying one (root in the guest can do that): names that
 * climb out of the destination, contain a slash or a NUL, a directory that never ends, a listing of
 * a million entries, a file announced small and sent large. Extraction refuses each, and the host
 * is left with nothing: no file in or beside the destination.
 */
class SandboxHostileAgentIT extends RealLibvirtTest {
  @TempDir Path tmp;

  /** STATUS is answered by the real agent until the liar holds the port; the liar refuses it. */
  private static void awaitTheLiar(Sandbox sb) throws InterruptedException {
    long end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (System.nanoTime() < end) {
      try {
        sb.status(Duration.ofSeconds(3));
        Thread.sleep(200); // still the real agent
      } catch (dev.agentvm.core.agent.AgentErrorException e) {
        assertTrue(e.getMessage().contains("hostile"), e.getMessage());
        return;
      } catch (IOException | RuntimeException e) {
        // the port changes hands: no answer for a moment
      }
    }
    throw new AssertionError("the hostile agent never took the port");
  }

  @Test
  void aLyingAgentGetsNothingOntoTheHost() throws Exception {
    try (Sandboxes sandboxes = Sandboxes.open(conn);
        Sandbox sb =
            sandboxes.create(
                SandboxSpec.defaults()
                    .withNamePrefix(TestVms.PREFIX + "liar-")
                    .withCommandTimeout(Duration.ofSeconds(60)))) {
      Path cls =
          Path.of(HostileAgent.class.getProtectionDomain().getCodeSource().getLocation().toURI())
              .resolve("dev/agentvm/execution/sandbox/HostileAgent.class");
      sb.files().upload(cls, "/tmp/hostile/dev/agentvm/execution/sandbox/HostileAgent.class", 0644);
      // the swap: the liar waits for the port, the real agent (this command's parent) is killed
      ExecResult r =
          sb.exec(
              ExecRequest.script(
                  "for p in /sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = "
                      + Protocol.VIRTIO_SERIAL_PORT_NAME
                      + " ] && dev=/dev/${p##*/}; done; agent=$PPID;"
                      + " setsid /opt/agentvm/jre/bin/java -Xint -Xshare:auto"
                      + " -cp /opt/agentvm/agent.jar:/tmp/hostile"
                      + " dev.agentvm.execution.sandbox.HostileAgent $dev"
                      + " </dev/null >/tmp/hostile.log 2>&1 &"
                      + " setsid sh -c \"sleep 3; kill -KILL $agent\" </dev/null >/dev/null 2>&1 &",
                  "sh"));
      assertEquals(0, r.exitCode(), r.stderrText());
      awaitTheLiar(sb);

      OutputLimits limits = new OutputLimits(10, 1 << 20, 1 << 20);
      java.util.Map<String, String> why =
          java.util.Map.of(
              "escape", "unusable name",
              "slash", "unusable name",
              "nul", "unusable name",
              "dotdot", "unusable name",
              "loop", "nested deeper than",
              "count", "1000000 entries",
              "grow", "grew");
      for (String dir : List.of("escape", "slash", "nul", "dotdot", "loop", "count", "grow")) {
        Path dest = tmp.resolve("out-" + dir);
        Exception e =
            assertThrows(
                Exception.class, () -> sb.files().extract("/workspace/" + dir, dest, limits), dir);
        assertTrue(e instanceof IOException || e instanceof OutputLimitException, dir + ": " + e);
        System.out.printf("lying agent, %s: %s%n", dir, e);
        assertTrue(String.valueOf(e.getMessage()).contains(why.get(dir)), dir + ": " + e);
        if (dir.equals("loop") || dir.equals("grow")) {
          assertInstanceOf(OutputLimitException.class, e, e.toString());
        }
        assertFalse(Files.exists(dest), dir + ": a destination was made");
        try (Stream<Path> left = Files.list(tmp)) {
          assertEquals(List.of(), left.toList(), dir + ": the host kept something");
        }
      }
      assertFalse(Files.exists(tmp.getParent().resolve("escaped")), "a name climbed out");
    }
  }
}
