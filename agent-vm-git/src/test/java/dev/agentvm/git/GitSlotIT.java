package dev.agentvm.git;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.storage.PersistentSlots;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Persistent slots on real sandboxes: kept across tasks, one holder at a time, flushed by a
 * graceful close, freed after a crash.
 */
class GitSlotIT extends RealLibvirtTest {
  private static Sandboxes sandboxes;
  private static SandboxSpec spec;
  private static AgentExecutor unusedExecutor;
  private static final PersistentSlots slots = PersistentSlots.atDefaultRoot();
  @TempDir static Path tmp;

  @BeforeAll
  static void setUp() throws Exception {
    MicroImage image = MicroImageBuilder.create().packages(MicroImage.PYTHON_GIT).build();
    sandboxes = Sandboxes.open(conn);
    spec = SandboxSpec.defaults().withImage(image).withNamePrefix(TestVms.name("gitslot") + "-");
    // slot tasks get sandboxes of their own; the runner still wants an executor for the others
    unusedExecutor = AgentExecutor.builder(sandboxes).sandbox(spec).build();
  }

  @AfterAll
  static void tearDown() {
    if (unusedExecutor != null) {
      unusedExecutor.close();
    }
    if (sandboxes != null) {
      sandboxes.close();
    }
  }

  private static GitTaskRunner runner() {
    return GitTaskRunner.builder(unusedExecutor)
        .slots(sandboxes, spec, slots)
        .slotWait(Duration.ofSeconds(1))
        .workRoot(tmp.resolve("git-work"))
        .build();
  }

  @Test
  @SuppressWarnings("try") // the held slot is only there to keep the slot busy for a second task
  void aSlotKeepsItsFilesAcrossTasksAndHasOneHolderAtATime() throws Exception {
    Path repo = GitTaskIT.newRepo(tmp.resolve("repo-slot"));
    String slot = "test-" + UUID.randomUUID().toString().substring(0, 8);
    try (GitTaskRunner r = runner()) {
      GitTaskResult first =
          r.run(
              GitTask.builder(repo, "main")
                  .slot(slot, 64L << 20)
                  .command("echo cached-by-task-1 > /slots/" + slot + "/cache.txt")
                  .timeout(Duration.ofMinutes(1))
                  .build());
      assertEquals(GitTaskResult.Outcome.NO_CHANGES, first.outcome());

      try (PersistentSlots.Slot held = slots.acquire(slot, 64L << 20, "the test", Duration.ZERO)) {
        GitTaskException busy =
            assertThrows(
                GitTaskException.class,
                () ->
                    r.run(
                        GitTask.builder(repo, "main")
                            .slot(slot, 64L << 20)
                            .command("true")
                            .build()));
        assertEquals(GitTaskException.Reason.SLOT_BUSY, busy.reason());
        assertTrue(busy.getMessage().contains("the test"), busy.getMessage());
      }

      GitTaskResult second =
          r.run(
              GitTask.builder(repo, "main")
                  .id("slot-read")
                  .slot(slot, 64L << 20)
                  .command(
                      "cp /slots/"
                          + slot
                          + "/cache.txt . && git add cache.txt"
                          + " && git commit -qm 'from the slot'")
                  .timeout(Duration.ofMinutes(1))
                  .build());
      assertEquals(GitTaskResult.Outcome.CREATED, second.outcome());
      assertEquals("cached-by-task-1", GitTaskIT.git(repo, "show", "agent/slot-read:cache.txt"));
    } finally {
      slots.delete(slot);
    }
  }

  @Test
  void aSlotHeldByAKilledTaskIsReleasedOnTheNextStart() throws Exception {
    Path repo = GitTaskIT.newRepo(tmp.resolve("repo-killed"));
    String slot = "test-" + UUID.randomUUID().toString().substring(0, 8);
    Process child =
        TestVms.startJvm(SlotHolderMain.class, TestVms.name("gitkill"), slot, repo.toString());
    try {
      waitForMarker(child, "slot-marked-" + slot);
      child.destroyForcibly(); // SIGKILL: no shutdown hook, no finally
      assertTrue(child.waitFor(30, TimeUnit.SECONDS));
      PersistentSlots.SlotBusyException stale =
          assertThrows(
              PersistentSlots.SlotBusyException.class,
              () -> slots.acquire(slot, 64L << 20, "too early", Duration.ZERO));
      assertTrue(stale.getMessage().contains("gone"), stale.getMessage());

      // the next start: opening sandboxes reaps its sandbox, the connection's reaper the holder
      Sandboxes.open(conn).close();
      LibvirtConnection.open().close();

      try (GitTaskRunner r = runner()) {
        GitTaskResult res =
            r.run(
                GitTask.builder(repo, "main")
                    .id("after-kill")
                    .slot(slot, 64L << 20)
                    .command(
                        "cp /slots/"
                            + slot
                            + "/marker . && git add marker"
                            + " && git commit -qm 'what the killed task left'")
                    .timeout(Duration.ofMinutes(1))
                    .build());
        assertEquals(GitTaskResult.Outcome.CREATED, res.outcome());
        assertEquals(
            "written-by-the-killed-task", GitTaskIT.git(repo, "show", "agent/after-kill:marker"));
      }
      assertFalse(Files.exists(slots.root().resolve(slot + ".holder")), "no holder left");
    } finally {
      child.destroyForcibly();
      slots.delete(slot);
    }
  }

  /** Waits until a guest wrote {@code marker} on its console (the sandbox's console log). */
  private static void waitForMarker(Process child, String marker) throws Exception {
    Path runs = AgentVmPaths.stateRoot().resolve("run");
    StringBuilder out = new StringBuilder();
    Thread drain =
        new Thread(
            () -> {
              try {
                out.append(
                    new String(
                        child.getInputStream().readAllBytes(),
                        java.nio.charset.StandardCharsets.UTF_8));
              } catch (java.io.IOException ignored) {
                // the child was killed
              }
            });
    drain.setDaemon(true);
    drain.start();
    for (int i = 0; i < 1800; i++) {
      if (Files.isDirectory(runs)) {
        try (Stream<Path> s = Files.list(runs)) {
          if (s.anyMatch(run -> consoleSays(run.resolve("console.log"), marker))) {
            return;
          }
        }
      }
      if (!child.isAlive()) {
        throw new AssertionError("the child ended early:\n" + out);
      }
      Thread.sleep(100);
    }
    throw new AssertionError("the child's agent never marked the slot:\n" + out);
  }

  private static boolean consoleSays(Path log, String marker) {
    try {
      return Files.isRegularFile(log)
          && new String(Files.readAllBytes(log), java.nio.charset.StandardCharsets.ISO_8859_1)
              .contains(marker);
    } catch (java.io.IOException e) {
      return false; // removed meanwhile
    }
  }
}
