package dev.agentvm.core.spi;

/**
 * Hears that a domain's state changed. Called on the event-loop thread: must be fast, must not
 * throw.
 */
@FunctionalInterface
public interface DomainLifecycleListener {
  void onLifecycleEvent(String domainName, String event);
}
