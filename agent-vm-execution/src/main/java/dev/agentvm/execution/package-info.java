/**
 * Execution: {@code AgentExecutor}, {@code VMPool}, metrics, audit log and anomaly detection. Empty
 * until the execution issue lands: the module exists so that the dependency direction (execution ->
 * core, network, storage) is fixed from the start.
 */
package dev.agentvm.execution;
