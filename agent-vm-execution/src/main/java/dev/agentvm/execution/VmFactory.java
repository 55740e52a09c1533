package dev.agentvm.execution;

/**
 * Makes and unmakes the VMs of a {@link VMPool}. Implementations must be thread-safe: the pool
 * calls them from several worker threads at once.
 */
public interface VmFactory {
  /**
   * Makes a VM ready for work (running, agent answering, workspace mounted).
   *
   * @param name a unique name for it
   * @param nowNanos the pool clock's time, to record as its creation time
   * @throws Exception if it could not be made; nothing of it may be left behind
   */
  PooledVm create(String name, long nowNanos) throws Exception;

  /**
   * Stops and removes a VM and everything of it. Must not throw for a VM that is already gone.
   *
   * @throws RuntimeException if something could not be removed; the message says what is left
   */
  void destroy(PooledVm vm);

  /**
   * Removes a VM when the pool closes: the guest is asked to power off and given up to {@code
   * grace} before it is destroyed. By default the same as {@link #destroy}.
   */
  default void retire(PooledVm vm, java.time.Duration grace) {
    destroy(vm);
  }

  /** Whether an idle VM may still be handed out (running, agent alive). Must be quick. */
  default boolean isHealthy(PooledVm vm) {
    return true;
  }

  /** A word for metrics and logs: {@code restore}, {@code cold}, ... */
  String kind();
}
