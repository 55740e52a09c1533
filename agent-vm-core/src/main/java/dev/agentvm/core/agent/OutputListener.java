package dev.agentvm.core.agent;

/**
 * Hears a command's output as it arrives. Called on the client's reader thread: must be fast and
 * must not throw. Chunks are not copied; do not modify them.
 */
public interface OutputListener {
  OutputListener NONE = new OutputListener() {};

  default void onStdout(byte[] chunk) {}

  default void onStderr(byte[] chunk) {}
}
