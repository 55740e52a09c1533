package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The host tools' runner: output on success; the reason, in words, on each way of failing. */
class ToolsTest {
  @Test
  void outputOrAClearReason() {
    assertEquals("hi\n", Tools.run(List.of("echo", "hi"), Duration.ofSeconds(10)));

    StorageException missing =
        assertThrows(
            StorageException.class,
            () -> Tools.run(List.of("agentvm-no-such-tool"), Duration.ofSeconds(10)));
    assertTrue(missing.getMessage().contains("is it installed"), missing.getMessage());

    StorageException failed =
        assertThrows(
            StorageException.class,
            () ->
                Tools.run(List.of("sh", "-c", "echo broken >&2; exit 3"), Duration.ofSeconds(10)));
    assertTrue(failed.getMessage().contains("exit 3"), failed.getMessage());
    assertTrue(failed.getMessage().contains("broken"), failed.getMessage());

    long t0 = System.nanoTime();
    StorageException hung =
        assertThrows(
            StorageException.class,
            () -> Tools.run(List.of("sleep", "30"), Duration.ofMillis(200)));
    assertTrue(hung.getMessage().contains("did not finish within 200 ms"), hung.getMessage());
    assertTrue(System.nanoTime() - t0 < 10_000_000_000L, "the hung tool was not killed");
  }
}
