package dev.agentvm.internal;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Stops what agent-vm owns when the JVM exits normally or on SIGTERM or SIGINT: every open libvirt
 * connection closes its VMs (guests asked to power off first), and higher layers register their own
 * resources (a pool closes before the connection it uses: newest first). A JVM killed with SIGKILL
 * runs no hook; the next connection's reaper cleans up after it. {@link Setting#SHUTDOWN_HOOK}
 * {@code off} leaves shutdown to the application.
 */
public final class ShutdownHooks {
  private static final Logger LOG = LoggerFactory.getLogger(ShutdownHooks.class);

  /** A private lock, so that no other code can block registration by holding the class's. */
  private static final Object LOCK = new Object();

  private static final Map<Object, Entry> ENTRIES = new LinkedHashMap<>(); // guarded by LOCK
  private static boolean installed; // guarded by LOCK
  private static volatile boolean running;

  private record Entry(String what, AutoCloseable resource) {}

  /** Undoes a registration; closing it twice is harmless. */
  public interface Registration extends AutoCloseable {
    @Override
    void close();
  }

  private ShutdownHooks() {}

  /**
   * Closes {@code resource} when the JVM exits, unless the returned registration was closed first
   * (do that when the resource is closed normally).
   */
  public static Registration register(String what, AutoCloseable resource) {
    Object key = new Object();
    synchronized (LOCK) {
      if (Setting.SHUTDOWN_HOOK.isOff()) {
        return () -> {};
      }
      ENTRIES.put(key, new Entry(what, resource));
      if (!installed) {
        installed = true;
        Runtime.getRuntime().addShutdownHook(new Thread(ShutdownHooks::runAll, "agentvm-shutdown"));
      }
    }
    return () -> {
      synchronized (LOCK) {
        if (!running) {
          ENTRIES.remove(key);
        }
      }
    };
  }

  /** Whether the JVM is shutting down and the hook runs. */
  public static boolean isShuttingDown() {
    return running;
  }

  private static void runAll() {
    List<Entry> all;
    synchronized (LOCK) {
      running = true;
      all = new ArrayList<>(ENTRIES.values());
      ENTRIES.clear();
    }
    if (all.isEmpty()) {
      return;
    }
    LOG.info("JVM is exiting: stopping {} agent-vm resources", all.size());
    for (int i = all.size() - 1; i >= 0; i--) {
      Entry e = all.get(i);
      try {
        e.resource().close();
      } catch (Exception ex) {
        // a failure to close a VM may quote what its guest said
        LOG.warn(
            "stopping {} at exit failed: {}",
            LogText.clean(e.what()),
            LogText.clean(ex.toString()));
      }
    }
  }
}
