package dev.agentvm.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** How the watchdog is started, and how a start that fails is noticed. */
class OwnerWatchdogTest {
  @Test
  void aPlainClassPathNeedsNoLauncherAndPassesTheOwner() {
    assertNull(OwnerWatchdog.springBootLauncher(), "loaded from a directory: no Boot launcher");
    List<String> cmd = OwnerWatchdog.command("qemu:///system");
    assertTrue(cmd.contains(OwnerWatchdog.class.getName()), cmd.toString());
    assertTrue(cmd.stream().noneMatch(c -> c.startsWith("-Dloader.main")), cmd.toString());
    assertTrue(cmd.contains("-Dagentvm.libvirt.uri=qemu:///system"), cmd.toString());
  }

  @Test
  void aWatchdogThatSaysReadyIsFollowedOneThatDiesAtOnceIsReported() throws Exception {
    Process ok =
        new ProcessBuilder("sh", "-c", "echo '" + OwnerWatchdog.READY + "'; echo later").start();
    assertTrue(OwnerWatchdog.followStart(ok, "qemu:///system", List.of("sh")));
    Process dead = new ProcessBuilder("sh", "-c", "echo 'no such class' >&2; exit 1").start();
    assertFalse(OwnerWatchdog.followStart(dead, "qemu:///system", List.of("sh")));
    assertEquals(1, dead.exitValue());
  }
}
