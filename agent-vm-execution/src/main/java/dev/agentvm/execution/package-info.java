/**
 * Running agents' code: {@link dev.agentvm.execution.AgentExecutor} (one execution, one fresh VM),
 * {@link dev.agentvm.execution.VMPool} with its {@link dev.agentvm.execution.VmFactory}s (memory
 * image clones, cold boots), Micrometer metrics, the JSON-lines audit log and the anomaly detector.
 */
package dev.agentvm.execution;
