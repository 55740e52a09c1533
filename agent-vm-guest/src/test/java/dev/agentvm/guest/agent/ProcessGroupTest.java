package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ProcessGroupTest {

  /** A group leader and a child it forked both go; the test JVM (another group) stays. */
  @Test
  void killReachesEveryMemberOfTheGroupAndNothingElse() throws Exception {
    Process leader =
        new ProcessBuilder("setsid", "sh", "-c", "sleep 300 & echo $!; wait")
            .redirectErrorStream(true)
            .start();
    long childPid =
        Long.parseLong(
            new java.io.BufferedReader(
                    new java.io.InputStreamReader(
                        leader.getInputStream(), java.nio.charset.StandardCharsets.UTF_8))
                .readLine()
                .trim());
    assertEquals(leader.pid(), ProcessGroup.groupOf(Path.of("/proc/" + childPid)));
    assertTrue(ProcessGroup.signal(leader.pid(), true) >= 2);
    assertTrue(leader.waitFor(10, TimeUnit.SECONDS));
    for (int i = 0;
        i < 100 && ProcessHandle.of(childPid).map(ProcessHandle::isAlive).orElse(false);
        i++) {
      Thread.sleep(50); // reaped by init once its parent died
    }
    assertFalse(
        ProcessHandle.of(childPid).map(ProcessHandle::isAlive).orElse(false), "the child is gone");
    assertTrue(ProcessHandle.current().isAlive());
  }

  @Test
  void neverTheWholeSystemInitOrTheAgentsOwnGroup() {
    assertEquals(0, ProcessGroup.signal(0, true));
    assertEquals(0, ProcessGroup.signal(1, true));
    assertEquals(0, ProcessGroup.signal(-1, true));
    assertEquals(0, ProcessGroup.signal(ProcessGroup.groupOf(Path.of("/proc/self")), true));
    assertTrue(ProcessHandle.current().isAlive());
  }

  @Test
  void aCommandNameWithSpacesAndParenthesesIsParsed(@TempDir Path dir) throws Exception {
    Files.writeString(dir.resolve("stat"), "4242 (a) b (c) S 1 777 777 0 -1 4194560 ...");
    assertEquals(777, ProcessGroup.groupOf(dir));
    assertEquals(-1, ProcessGroup.groupOf(dir.resolve("gone")));
  }
}
