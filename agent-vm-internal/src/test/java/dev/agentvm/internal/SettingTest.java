package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class SettingTest {
  @Test
  void systemPropertyWinsOverEnvironmentAndDefault() {
    String old = System.getProperty(Setting.STATE_DIR.property());
    try {
      System.setProperty(Setting.STATE_DIR.property(), " /tmp/agentvm-setting-test ");
      assertEquals(Path.of("/tmp/agentvm-setting-test"), AgentVmPaths.stateRoot());
      assertEquals(Path.of("/tmp/agentvm-setting-test/run/vm1"), AgentVmPaths.runDir("vm1"));
      System.setProperty(Setting.STATE_DIR.property(), "  ");
      assertFalse(AgentVmPaths.stateRoot().toString().isBlank(), "blank counts as absent");
    } finally {
      if (old == null) {
        System.clearProperty(Setting.STATE_DIR.property());
      } else {
        System.setProperty(Setting.STATE_DIR.property(), old);
      }
    }
  }

  @Test
  void switchesAreOnUnlessOff() {
    String key = Setting.REAP.property();
    String old = System.getProperty(key);
    try {
      System.setProperty(key, "OFF");
      assertTrue(Setting.REAP.isOff());
      System.setProperty(key, "on");
      assertFalse(Setting.REAP.isOff());
      assertEquals("on", Setting.REAP.valueOr("x"));
    } finally {
      if (old == null) {
        System.clearProperty(key);
      } else {
        System.setProperty(key, old);
      }
    }
  }

  @Test
  void everySettingHasDistinctNames() {
    assertEquals(
        Setting.values().length,
        java.util.Arrays.stream(Setting.values())
            .map(Setting::environmentVariable)
            .distinct()
            .count());
    for (Setting s : Setting.values()) {
      assertTrue(s.environmentVariable().startsWith("AGENTVM_"), s.name());
      assertTrue(s.property().startsWith("agentvm."), s.name());
    }
  }
}
