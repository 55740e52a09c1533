package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.MDC;
import org.slf4j.MdcForTests;

@SuppressWarnings("try") // scopes whose variable the body does not use
class LogContextTest {
  @BeforeAll
  static void workingMdc() {
    MdcForTests.install();
  }

  @AfterEach
  void clean() {
    MDC.clear();
  }

  @Test
  void aNestedScopeGivesBackTheOuterValueAndTheOuterOneRemovesTheKey() {
    try (LogContext.Scope outer = LogContext.put(LogContext.SANDBOX, "sb-1")) {
      try (LogContext.Scope inner = LogContext.put(LogContext.SANDBOX, "sb-2")) {
        assertEquals("sb-2", MDC.get(LogContext.SANDBOX));
      }
      assertEquals("sb-1", MDC.get(LogContext.SANDBOX), "the outer value, not removed");
    }
    assertNull(MDC.get(LogContext.SANDBOX));
  }

  @Test
  void replaceHidesWhatWasThereAndPutsItBack() {
    MDC.put("user", "alice");
    try (LogContext.Scope s = LogContext.replace(Map.of(LogContext.VM, "vm-1"))) {
      assertEquals(Map.of(LogContext.VM, "vm-1"), MDC.getCopyOfContextMap());
    }
    assertEquals(Map.of("user", "alice"), MDC.getCopyOfContextMap());
    try (LogContext.Scope s = LogContext.replace(Map.of(LogContext.VM, "vm-1"))) {
      MDC.clear();
    }
    assertEquals(Map.of("user", "alice"), MDC.getCopyOfContextMap());
    MDC.clear();
    try (LogContext.Scope s = LogContext.replace(Map.of(LogContext.VM, "vm-1"))) {
      MDC.put("left", "behind");
    }
    assertEquals(Map.of(), mdc(), "nothing left behind");
  }

  @Test
  void aWrappedTaskSeesItsContextOnlyAndLeavesTheThreadAsItWas() {
    MDC.put(LogContext.EXECUTION, "caller's");
    AtomicReference<Map<String, String>> seen = new AtomicReference<>();
    LogContext.wrap(Map.of(LogContext.POOL, "p"), () -> seen.set(mdc())).run();
    assertEquals(Map.of(LogContext.POOL, "p"), seen.get());
    assertEquals(Map.of(LogContext.EXECUTION, "caller's"), mdc());
  }

  @Test
  void ourThreadsStartWithAnEmptyMdcEvenWhereItIsInherited() throws Exception {
    MDC.put(LogContext.EXECUTION, "e-1");
    AtomicReference<Map<String, String>> plain = new AtomicReference<>();
    Thread p = new Thread(() -> plain.set(mdc()));
    p.start();
    p.join();
    assertEquals(
        Map.of(LogContext.EXECUTION, "e-1"), plain.get(), "this adapter does inherit (control)");

    AtomicReference<Map<String, String>> ours = new AtomicReference<>();
    Thread t = Threads.daemon(() -> ours.set(mdc()), "agentvm-test");
    t.start();
    t.join();
    assertEquals(Map.of(), ours.get());
    Thread n = Threads.numberedDaemons("agentvm-test").newThread(() -> ours.set(mdc()));
    n.start();
    n.join();
    assertEquals(Map.of(), ours.get());
  }

  private static Map<String, String> mdc() {
    Map<String, String> m = MDC.getCopyOfContextMap();
    return m == null ? Map.of() : new HashMap<>(m);
  }
}
