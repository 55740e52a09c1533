package dev.agentvm.execution.internal;

import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Every meter agent-vm reports, in one place: name, type, unit, description and tag keys.
 * docs/observability.md lists the same (a test keeps the two equal). Names follow Micrometer's
 * conventions: lowercase words separated by dots under {@code agentvm.}; durations are timers (each
 * backend adds its own unit), never gauges of milliseconds; counters carry no {@code .total}
 * (backends that want it add it).
 */
public enum AgentVmMeter {
  POOL_VMS(
      "agentvm.pool.vms",
      Type.GAUGE,
      "vms",
      "VMs of the pool in each state (destroying ones still hold memory and count against maxSize)",
      "pool",
      "state"),
  POOL_WAITERS(
      "agentvm.pool.waiters", Type.GAUGE, null, "callers waiting in acquire for a VM", "pool"),
  POOL_REFILL_FAILURES(
      "agentvm.pool.refill.failures",
      Type.GAUGE,
      null,
      "failed attempts in a row to make a VM; 0 once one succeeds",
      "pool"),
  POOL_ACQUIRE_WAIT(
      "agentvm.pool.acquire.wait",
      Type.TIMER,
      null,
      "time callers waited in acquire for a VM (those served)",
      "pool"),
  POOL_VM_CREATE(
      "agentvm.pool.vm.create",
      Type.TIMER,
      null,
      "time to make a pool VM ready for work: boot (kind=cold) or clone restore (kind=restore),"
          + " agent answering, workspace mounted",
      "pool",
      "kind",
      "outcome"),
  POOL_DISCARDED(
      "agentvm.pool.discarded",
      Type.COUNTER,
      null,
      "VMs the pool took back and destroyed, by why",
      "pool",
      "reason"),
  EXECUTIONS(
      "agentvm.executions",
      Type.COUNTER,
      null,
      "executions ended, by outcome",
      "executor",
      "outcome"),
  EXECUTION_DURATION(
      "agentvm.execution.duration",
      Type.TIMER,
      null,
      "time from submit to result of executions that ran to an end (completed or timed out)",
      "executor",
      "outcome"),
  VM_CRASHES(
      "agentvm.vm.crashes",
      Type.COUNTER,
      null,
      "VMs that died while running an execution",
      "executor"),
  ANOMALIES(
      "agentvm.anomalies",
      Type.COUNTER,
      null,
      "anomalies the detector found in executions, by rule",
      "executor",
      "rule"),
  QUARANTINED(
      "agentvm.executor.quarantined",
      Type.GAUGE,
      null,
      "sandboxes the executor keeps paused for inspection after an anomaly (at most its"
          + " maxQuarantined)",
      "executor"),
  SANDBOX_CREATE(
      "agentvm.sandbox.create",
      Type.TIMER,
      null,
      "time to create a sandbox until its agent answers: boot (kind=cold) or restore of a warm"
          + " image (kind=restore)",
      "kind",
      "outcome"),
  SANDBOX_READY(
      "agentvm.sandbox.ready",
      Type.GAUGE,
      null,
      "sandboxes kept running and ready to hand out (Sandboxes.keepReady)"),
  SANDBOX_PAUSE(
      "agentvm.sandbox.pause",
      Type.TIMER,
      null,
      "time to pause a sandbox: memory saved to disk, VM removed",
      "outcome"),
  SANDBOX_RESUME(
      "agentvm.sandbox.resume",
      Type.TIMER,
      null,
      "time to resume a paused sandbox: memory restored, agent answering",
      "outcome"),
  SANDBOX_CHECKPOINT(
      "agentvm.sandbox.checkpoint",
      Type.TIMER,
      null,
      "time to take a checkpoint: save, freeze the disk layer, restore",
      "outcome"),
  SANDBOX_ROLLBACK(
      "agentvm.sandbox.rollback",
      Type.TIMER,
      null,
      "time to roll a sandbox back to a checkpoint (a restore)",
      "outcome"),
  SANDBOX_FORK(
      "agentvm.sandbox.fork",
      Type.TIMER,
      null,
      "time to fork a sandbox into all its copies (a save, then one restore per copy and the"
          + " original)",
      "outcome"),
  EGRESS_CONNECTIONS(
      "agentvm.egress.connections",
      Type.COUNTER,
      null,
      "connections sandboxes asked their egress proxy for, when they ended: allowed or denied, and"
          + " the check that denied them (port, address, name, domain, resolve, request, limit, sni;"
          + " none when allowed)",
      "outcome",
      "check"),
  EGRESS_BYTES(
      "agentvm.egress.traffic",
      Type.COUNTER,
      "bytes",
      "bytes sandboxes sent (direction=out) and received (direction=in) through their egress"
          + " proxies",
      "direction");

  /** How a meter measures. */
  public enum Type {
    GAUGE,
    COUNTER,
    TIMER
  }

  private final String meterName;
  private final Type type;
  private final @Nullable String baseUnit;
  private final String description;

  @SuppressWarnings("ImmutableEnumChecker") // List.of: immutable, which the checker cannot see
  private final List<String> tagKeys;

  AgentVmMeter(
      String meterName,
      Type type,
      @Nullable String baseUnit,
      String description,
      String... tagKeys) {
    this.meterName = meterName;
    this.type = type;
    this.baseUnit = baseUnit;
    this.description = description;
    this.tagKeys = List.of(tagKeys);
  }

  /** The meter's name, e.g. {@code agentvm.pool.vms}. */
  public String meterName() {
    return meterName;
  }

  public Type type() {
    return type;
  }

  /** The base unit of a gauge or counter, if it has one; timers are in the backend's time unit. */
  public @Nullable String baseUnit() {
    return baseUnit;
  }

  public String description() {
    return description;
  }

  /** Its tag keys, the owner's ({@code pool} or {@code executor}) first. */
  public List<String> tagKeys() {
    return tagKeys;
  }

  /** Whether its timer publishes a percentile histogram (the two latencies worth alerting on). */
  public boolean histogram() {
    return this == POOL_ACQUIRE_WAIT || this == EXECUTION_DURATION;
  }
}
