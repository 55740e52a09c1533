package dev.agentvm.internal;

import java.util.HashMap;
import java.util.Map;
import org.jspecify.annotations.Nullable;
import org.slf4j.MDC;

/**
 * The MDC keys agent-vm sets while it works for a VM, a sandbox, an execution or a pool, and scopes
 * that put them and give back what was there before.
 *
 * <p>Loggers are one per class; which VM a line is about is in the MDC (and in the message, for
 * backends that do not print the MDC). A logger per VM name would grow the logging backend's logger
 * registry without bound in a long-running pool.
 *
 * <pre>{@code
 * try (LogContext.Scope s = LogContext.put(LogContext.VM, name)) {
 *   LOG.debug("VM {}: started", name);
 * }
 * }</pre>
 */
public final class LogContext {
  /** The VM's name (libvirt domain name). */
  public static final String VM = "vm";

  /** The sandbox's id (also its VM's name). */
  public static final String SANDBOX = "sandbox";

  /** The execution's id ({@code ExecutionRequest.id()}). */
  public static final String EXECUTION = "execution";

  /** The pool's name (the {@code pool} tag of its meters). */
  public static final String POOL = "pool";

  private LogContext() {}

  /** Gives back the MDC as it was before the scope began. Never throws. */
  public interface Scope extends AutoCloseable {
    @Override
    void close();
  }

  /**
   * Sets {@code key} to {@code value} until the scope closes, then puts back the value the key had
   * before (or removes it). Unlike {@link MDC#putCloseable}, nested scopes of one key restore the
   * outer value instead of removing it. Open and close it on the same thread.
   */
  public static Scope put(String key, String value) {
    @Nullable String before = MDC.get(key);
    MDC.put(key, value);
    return () -> {
      if (before == null) {
        MDC.remove(key);
      } else {
        MDC.put(key, before);
      }
    };
  }

  /**
   * Replaces the whole MDC by {@code context} until the scope closes, then restores what was there:
   * for a task on a shared worker thread, which must neither see what an earlier task or the
   * submitting thread left nor leave anything behind.
   */
  public static Scope replace(Map<String, String> context) {
    @Nullable Map<String, String> before = MDC.getCopyOfContextMap();
    MDC.setContextMap(new HashMap<>(context));
    return () -> {
      if (before == null || before.isEmpty()) {
        MDC.clear();
      } else {
        MDC.setContextMap(before);
      }
    };
  }

  /** {@code task} run with {@link #replace replace(context)} around it. */
  @SuppressWarnings("try") // the scope is unused in the body by design
  public static Runnable wrap(Map<String, String> context, Runnable task) {
    Map<String, String> copy = Map.copyOf(context);
    return () -> {
      try (Scope s = replace(copy)) {
        task.run();
      }
    };
  }
}
