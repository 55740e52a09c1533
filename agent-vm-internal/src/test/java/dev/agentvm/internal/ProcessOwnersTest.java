package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ProcessOwnersTest {
  /** A pid no process has: beyond Linux's pid_max limit. */
  private static final String DEAD_PID = "4194305";

  private static final String START = "2026-01-01T00:00:00Z";

  @Test
  void thisProcessIsAliveAndOfThisMachine() {
    assertTrue(ProcessOwners.CURRENT.startsWith(ProcessOwners.MACHINE + ":"));
    assertTrue(ProcessOwners.MACHINE.matches("[A-Za-z0-9._-]{1,90}"), ProcessOwners.MACHINE);
    assertTrue(ProcessOwners.isAlive(ProcessOwners.CURRENT));
    assertTrue(ProcessOwners.isOfThisMachine(ProcessOwners.CURRENT));
    assertTrue(ProcessOwners.namesThisMachine(ProcessOwners.CURRENT));
  }

  @Test
  void aDeadProcessOfThisMachineIsDead() {
    assertFalse(ProcessOwners.isAlive(ProcessOwners.MACHINE + ":" + DEAD_PID + "@" + START));
    // written before owners named their machine: judged here, but does not name it
    String legacy = DEAD_PID + "@" + START;
    assertFalse(ProcessOwners.isAlive(legacy));
    assertTrue(ProcessOwners.isOfThisMachine(legacy));
    assertFalse(ProcessOwners.namesThisMachine(legacy));
  }

  @Test
  void anotherMachinesOwnerIsNeverJudgedHere() {
    String other = "another-machine-1:" + DEAD_PID + "@" + START;
    assertTrue(ProcessOwners.isAlive(other));
    assertFalse(ProcessOwners.isOfThisMachine(other));
    assertFalse(ProcessOwners.namesThisMachine(other));
    // this very pid and start, on another machine: still not ours
    String twin = ProcessOwners.CURRENT.replace(ProcessOwners.MACHINE + ":", "another-machine-1:");
    assertFalse(ProcessOwners.isOfThisMachine(twin));
  }

  @Test
  void aLiveProcessWhoseStartIsUnknownIsAlive() {
    assertTrue(
        ProcessOwners.isAlive(
            ProcessOwners.MACHINE + ":" + ProcessHandle.current().pid() + "@unknown"));
  }

  @Test
  void stringsOfAnotherFormatCountAsAlive() {
    assertTrue(ProcessOwners.isAlive(""));
    assertTrue(ProcessOwners.isAlive("someone"));
    assertTrue(ProcessOwners.isAlive("abc@def"));
    assertTrue(ProcessOwners.isAlive("@x"));
    assertTrue(ProcessOwners.isAlive(ProcessOwners.MACHINE + ":x@y"));
  }
}
