package dev.agentvm.execution;

/**
 * Something unusual about an execution.
 *
 * @param executionId the execution
 * @param vm the VM it ran in
 * @param rule which check fired: {@code duration-zscore}, {@code memory-zscore}, {@code
 *     load-zscore}, {@code process-count}, {@code output-flood}, {@code exec-rate}
 * @param detail the numbers behind it
 * @param response what the executor does about it
 */
public record Anomaly(
    String executionId, String vm, String rule, String detail, AnomalyDetector.Response response) {}
