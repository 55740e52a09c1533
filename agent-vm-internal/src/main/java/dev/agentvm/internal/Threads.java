package dev.agentvm.internal;

import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

/** Thread factories for agent-vm's own threads: daemons, named so a thread dump says whose. */
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
    Thread t = new Thread(r, name);
    t.setDaemon(true);
    return t;
  }
}
