package dev.agentvm.execution.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The meters' names against Micrometer's conventions, the doc against the list, the fan-out. */
class AgentVmMeterTest {
  private static final Pattern NAME = Pattern.compile("agentvm(\\.[a-z][a-z0-9]*)+");

  /** Suffixes a backend adds itself, or units that belong in a base unit or a timer. */
  private static final List<String> NOT_IN_NAMES =
      List.of(
          ".total",
          ".count",
          ".sum",
          ".max",
          ".seconds",
          ".ms",
          ".millis",
          ".nanos",
          ".bytes",
          ".percent",
          "_");

  @Test
  void namesFollowMicrometersConventions() {
    List<String> bad = new ArrayList<>();
    for (AgentVmMeter m : AgentVmMeter.values()) {
      String n = m.meterName();
      if (!NAME.matcher(n).matches()) {
        bad.add(n + ": not lowercase dot-separated words under agentvm.");
      }
      for (String s : NOT_IN_NAMES) {
        if (n.endsWith(s) || (s.equals("_") && n.contains(s))) {
          bad.add(n + ": ends with " + s);
        }
      }
      if (m.type() == AgentVmMeter.Type.TIMER && m.baseUnit() != null) {
        bad.add(n + ": a timer's unit is the backend's");
      }
      if (m.description().isBlank()) {
        bad.add(n + ": no description");
      }
      for (String k : m.tagKeys()) {
        if (!k.matches("[a-z]+")) {
          bad.add(n + ": tag key " + k);
        }
      }
      if (n.startsWith("agentvm.pool.") && !m.tagKeys().contains("pool")) {
        bad.add(n + ": a pool's meter without the pool tag");
      }
    }
    assertEquals(List.of(), bad);
  }

  @Test
  void theDocListsEveryMeterWithItsTypeAndTags() throws Exception {
    String doc = Files.readString(Path.of("..", "docs", "observability.md"));
    List<String> missing = new ArrayList<>();
    for (AgentVmMeter m : AgentVmMeter.values()) {
      String row =
          "| `"
              + m.meterName()
              + "` | "
              + m.type().name().toLowerCase(java.util.Locale.ROOT)
              + " | "
              + String.join(", ", m.tagKeys().stream().map(k -> "`" + k + "`").toList())
              + " |";
      if (!doc.contains(row)) {
        missing.add(row);
      }
    }
    assertEquals(List.of(), missing, "rows docs/observability.md lacks");
  }

  @Test
  void meterRecordsIntoEveryBoundRegistryAndCloseRemovesWhatItMade() {
    Meters m = new Meters(Tags.of("pool", "p"), "pool named 'p'");
    m.record(AgentVmMeter.POOL_ACQUIRE_WAIT, Tags.empty(), 5); // no registry: nowhere
    SimpleMeterRegistry a = new SimpleMeterRegistry();
    SimpleMeterRegistry b = new SimpleMeterRegistry();
    m.bindTo(a);
    m.counter(AgentVmMeter.VM_CRASHES, Tags.empty()); // declared after a bind: there at once
    m.counter(AgentVmMeter.VM_CRASHES, Tags.empty()); // and only once
    m.bindTo(b);
    m.increment(AgentVmMeter.EXECUTIONS, Tags.of("outcome", "completed"));
    m.record(AgentVmMeter.POOL_ACQUIRE_WAIT, Tags.empty(), 5);
    for (SimpleMeterRegistry r : List.of(a, b)) {
      assertEquals(0.0, r.get("agentvm.vm.crashes").tag("pool", "p").counter().count());
      assertEquals(1.0, r.get("agentvm.executions").tags("pool", "p").counter().count());
      assertEquals(1, r.get("agentvm.pool.acquire.wait").tag("pool", "p").timer().count());
    }
    assertThrows(
        IllegalArgumentException.class,
        () -> m.increment(AgentVmMeter.POOL_ACQUIRE_WAIT, Tags.empty()),
        "a timer is not counted");
    m.close();
    m.close();
    assertTrue(a.getMeters().isEmpty());
    assertTrue(b.getMeters().isEmpty());
    m.increment(AgentVmMeter.EXECUTIONS, Tags.of("outcome", "completed"));
    m.bindTo(a);
    assertNull(a.find("agentvm.executions").counter(), "closed: records nothing, binds nothing");
  }
}
