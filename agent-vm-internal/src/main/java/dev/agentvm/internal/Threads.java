package dev.agentvm.internal;

import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.MDC;

/**
 * Thread factories for agent-vm's own threads: daemons, named so a thread dump says whose. Each
 * starts with an empty MDC: with an inheriting MDC (slf4j's basic adapter, Log4j 2 when so
 * configured) a worker made while one caller's execution or VM was in the MDC would otherwise carry
 * it in every line it ever logs.
 */
public final class Threads {
  private Threads() {}

  /** Daemon threads named {@code prefix-1}, {@code prefix-2}, ... */
  public static ThreadFactory numberedDaemons(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return r -> daemon(r, prefix + "-" + n.incrementAndGet());
  }

  /** Daemon threads that all carry {@code name} (for executors of one thread). */
  public static ThreadFactory namedDaemons(String name) {
    return r -> daemon(r, name);
  }

  /** A daemon thread, not started. */
  public static Thread daemon(Runnable r, String name) {
    Thread t =
        new Thread(
            () -> {
              MDC.clear();
              r.run();
            },
            name);
    t.setDaemon(true);
    return t;
  }
}
