package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What a spec with an attached disk accepts: nothing that would pause it, no odd mount points. */
class SandboxSpecTest {
  private static final Path DISK = Path.of("/var/tmp/disk.qcow2");

  @Test
  void attachingADiskTurnsOffPausingAndRefusesItBackOn() {
    SandboxSpec s =
        SandboxSpec.builder()
            .lease(Duration.ofMinutes(5))
            .attachedDisk(new SandboxSpec.AttachedDisk(DISK, "/slots/repo"))
            .build();
    assertEquals(Duration.ZERO, s.idleTimeout());
    assertEquals(SandboxSpec.LeaseEnd.CLOSE, s.onLeaseEnd());
    assertEquals(s, s.toBuilder().build(), "the disk survives a copy");
    assertThrows(IllegalArgumentException.class, () -> s.withIdleTimeout(Duration.ofMinutes(1)));
    assertThrows(
        IllegalArgumentException.class,
        () -> s.withLease(Duration.ofMinutes(1), SandboxSpec.LeaseEnd.PAUSE));
  }

  @Test
  void mountPointsAndPathsThatCannotBeAreRefused() {
    for (String bad :
        List.of(
            "",
            "/",
            "relative",
            "/workspace",
            "/workspace/x",
            "/usr",
            "/usr/lib",
            "/a b",
            "/a:b",
            "/a/../b",
            "/.hidden",
            "/x\n")) {
      assertThrows(
          IllegalArgumentException.class, () -> new SandboxSpec.AttachedDisk(DISK, bad), bad);
    }
    assertThrows(
        IllegalArgumentException.class,
        () -> new SandboxSpec.AttachedDisk(Path.of("disk.qcow2"), "/mnt/x"));
    assertEquals(
        "/mnt/cache_1/v-2.0",
        new SandboxSpec.AttachedDisk(DISK, "/mnt/cache_1/v-2.0").mountPoint());
  }
}
