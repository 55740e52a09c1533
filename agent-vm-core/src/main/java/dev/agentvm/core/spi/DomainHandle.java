package dev.agentvm.core.spi;

/** One domain of a {@link HypervisorBackend}. Thread-safe. */
public interface DomainHandle {
  String name();

  String uuid();

  /** The current state as the hypervisor reports it. */
  DomainStatus status();

  void start();

  /** Asks the guest to shut down (ACPI power button); returns at once. */
  void requestShutdown();

  /** Stops the domain at once, like pulling the plug. */
  void destroy();

  void undefine();

  void suspend();

  void resume();

  /** The domain XML, live if running. */
  String xml();
}
