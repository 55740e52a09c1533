package dev.agentvm.internal;

import java.time.Instant;

/**
 * Who owns a resource: {@code <pid>@<process start instant>}, recorded in domain metadata, holder
 * files and reservation books, so that the resources of a process that died (SIGKILL, a crash) can
 * be told from those of a live one, even after its pid was reused.
 */
public final class ProcessOwners {
  /** This process, as an owner string. */
  public static final String CURRENT =
      ProcessHandle.current().pid()
          + "@"
          + ProcessHandle.current().info().startInstant().map(Instant::toString).orElse("unknown");

  private ProcessOwners() {}

  /**
   * Whether the owner still runs. Strings of another format are not ours to judge: they count as
   * alive, so nothing of theirs is removed.
   */
  public static boolean isAlive(String owner) {
    int at = owner.indexOf('@');
    if (at <= 0) {
      return true;
    }
    long pid;
    try {
      pid = Long.parseLong(owner.substring(0, at));
    } catch (NumberFormatException e) {
      return true;
    }
    String start = owner.substring(at + 1);
    return ProcessHandle.of(pid)
        .filter(ProcessHandle::isAlive)
        .map(ph -> ph.info().startInstant().map(Instant::toString).map(start::equals).orElse(true))
        .orElse(false);
  }
}
