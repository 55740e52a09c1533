/**
 * The JUnit Jupiter extension (JUnit 5.10 and later, and 6): {@link dev.agentvm.junit.AgentVmTest}
 * classes get booted VMs and executors in {@link dev.agentvm.junit.AgentVm} fields, removed after
 * the test, also when it fails.
 */
package dev.agentvm.junit;
