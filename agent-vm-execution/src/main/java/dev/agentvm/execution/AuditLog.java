package dev.agentvm.execution;

/**
 * Where audit events go. Implementations must be thread-safe, fast, and must not throw (a failing
 * audit log is reported by the implementation, it never fails an execution).
 */
@FunctionalInterface
public interface AuditLog extends AutoCloseable {
  AuditLog NONE = e -> {};

  void record(AuditEvent event);

  @Override
  default void close() {}
}
