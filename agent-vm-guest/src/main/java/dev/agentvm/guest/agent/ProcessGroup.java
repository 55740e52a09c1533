package dev.agentvm.guest.agent;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Signals every process of a process group, found by walking {@code /proc}. No external {@code
 * kill}: its argument syntax differs between implementations, and procps-ng 4.0.2 (Debian 12) reads
 * {@code kill -KILL -12345} as a signal to process group 1, that is to every process it may signal.
 * A user's disk image may carry exactly that {@code kill}.
 */
final class ProcessGroup {
  private static final int KILL_PASSES = 10;

  private ProcessGroup() {}

  /**
   * Sends TERM ({@code force} false) or KILL to every member of group {@code pgid}; with KILL,
   * walks again while members remain (one may fork while it is walked), at most ten times. Never
   * signals group 0 or 1, the agent's own group or the agent. Returns how many signals were sent.
   */
  static int signal(long pgid, boolean force) {
    if (pgid <= 1 || pgid == groupOf(Path.of("/proc/self"))) {
      GuestAgent.log("refused to signal process group " + pgid);
      return 0;
    }
    int sent = 0;
    for (int pass = 0; pass < (force ? KILL_PASSES : 1); pass++) {
      int now = signalOnce(pgid, force);
      if (now == 0) {
        break;
      }
      sent += now;
    }
    return sent;
  }

  private static int signalOnce(long pgid, boolean force) {
    long self = ProcessHandle.current().pid();
    int sent = 0;
    try (DirectoryStream<Path> procs = Files.newDirectoryStream(Path.of("/proc"), "[0-9]*")) {
      for (Path dir : procs) {
        long pid = pidOf(dir);
        if (pid <= 1 || pid == self || groupOf(dir) != pgid) {
          continue;
        }
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        if (h.isPresent()
            && h.get().isAlive()
            && (force ? h.get().destroyForcibly() : h.get().destroy())) {
          sent++;
        }
      }
    } catch (IOException e) {
      GuestAgent.log("cannot list /proc to signal process group " + pgid + ": " + e);
    }
    return sent;
  }

  private static long pidOf(Path dir) {
    Path name = dir.getFileName();
    try {
      return name == null ? -1 : Long.parseLong(name.toString());
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  /**
   * The process group in {@code dir/stat}, or -1 when the process is gone. The command name in
   * parentheses may hold spaces and parentheses: the fields are counted after its last ')'.
   */
  static long groupOf(Path dir) {
    try {
      String stat = Files.readString(dir.resolve("stat"), StandardCharsets.ISO_8859_1);
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ", 4); // state ppid pgrp
      return Long.parseLong(f[2]);
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }
}
