package dev.agentvm.git;

/**
 * Hears about git tasks, on the runner's event thread (never the caller's): in order per runner, so
 * a slow listener delays later events but never a task.
 */
public interface GitTaskListener {
  default void started(String taskId, String branch) {}

  default void completed(GitTaskResult result) {}

  default void failed(String taskId, String branch, GitTaskException error) {}
}
