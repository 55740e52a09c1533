package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.EnumSet;
import org.junit.jupiter.api.Test;

class TaskStateTest {
  @Test
  void onlyTheDocumentedPathsExist() {
    assertTrue(TaskState.PENDING.canTransitionTo(TaskState.PREPARING));
    assertTrue(TaskState.PREPARING.canTransitionTo(TaskState.RUNNING));
    for (TaskState end :
        EnumSet.of(
            TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.CANCELLED)) {
      assertTrue(TaskState.RUNNING.canTransitionTo(end), end.name());
      assertTrue(end.isTerminal());
      for (TaskState any : TaskState.values()) {
        assertFalse(end.canTransitionTo(any), end + " -> " + any);
      }
    }
    assertFalse(TaskState.PENDING.canTransitionTo(TaskState.RUNNING), "no skipping PREPARING");
    assertFalse(TaskState.PENDING.canTransitionTo(TaskState.TIMED_OUT));
    assertFalse(TaskState.RUNNING.canTransitionTo(TaskState.PENDING));
    assertEquals(3, EnumSet.allOf(TaskState.class).stream().filter(s -> !s.isTerminal()).count());
  }
}
