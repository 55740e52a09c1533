package dev.agentvm.internal;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import org.jspecify.annotations.Nullable;

/**
 * Who owns a resource: {@code <machine>:<pid>@<process start instant>}, recorded in domain
 * metadata, holder files and reservation books, so that the resources of a process that died
 * (SIGKILL, a crash) can be told from those of a live one, even after its pid was reused. The
 * machine part keeps a process from judging owners on other machines that share a libvirt host:
 * their pids mean nothing here. (It comes first so that versions that wrote {@code pid@start} read
 * it as a format they do not know, which they leave alone.)
 */
public final class ProcessOwners {
  /**
   * This machine and PID namespace: {@code /etc/machine-id} (or D-Bus's copy, else the kernel's
   * host name) and the inode of this process's PID namespace, so that containers sharing a machine
   * id still differ. Letters, digits, dots, dashes and underscores only.
   */
  public static final String MACHINE = machineId();

  /** This process, as an owner string. */
  public static final String CURRENT =
      MACHINE
          + ":"
          + ProcessHandle.current().pid()
          + "@"
          + ProcessHandle.current().info().startInstant().map(Instant::toString).orElse("unknown");

  private ProcessOwners() {}

  /**
   * Whether the owner still runs. Owners on another machine, and strings of another format, are not
   * ours to judge: they count as alive, so nothing of theirs is removed. An owner without a machine
   * part (written by an earlier version) is judged as one of this machine.
   */
  public static boolean isAlive(String owner) {
    String machine = machineOf(owner);
    if (machine != null && !machine.equals(MACHINE)) {
      return true;
    }
    String local = machine == null ? owner : owner.substring(machine.length() + 1);
    int at = local.indexOf('@');
    if (at <= 0) {
      return true;
    }
    long pid;
    try {
      pid = Long.parseLong(local.substring(0, at));
    } catch (NumberFormatException e) {
      return true;
    }
    String start = local.substring(at + 1);
    return ProcessHandle.of(pid)
        .filter(ProcessHandle::isAlive)
        .map(
            ph ->
                start.equals("unknown")
                    || ph.info()
                        .startInstant()
                        .map(Instant::toString)
                        .map(start::equals)
                        .orElse(true))
        .orElse(false);
  }

  /** Whether the owner is a process of this machine, or names no machine (an earlier format). */
  public static boolean isOfThisMachine(String owner) {
    String machine = machineOf(owner);
    return machine == null || machine.equals(MACHINE);
  }

  /**
   * Whether the owner names this machine explicitly: on a libvirt host that several machines share,
   * only such owners are this process's to judge.
   */
  public static boolean namesThisMachine(String owner) {
    return MACHINE.equals(machineOf(owner));
  }

  /** The machine part: before a ':' that comes before the '@' (instants have colons too). */
  private static @Nullable String machineOf(String owner) {
    int colon = owner.indexOf(':');
    int at = owner.indexOf('@');
    return colon > 0 && (at < 0 || colon < at) ? owner.substring(0, colon) : null;
  }

  private static String machineId() {
    String id = "";
    for (String f : new String[] {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
      id = read(Path.of(f));
      if (!id.isEmpty() && !id.equals("uninitialized")) {
        break;
      }
      id = "";
    }
    if (id.isEmpty()) {
      id = read(Path.of("/proc/sys/kernel/hostname"));
    }
    if (id.isEmpty()) {
      id = "unknown-machine";
    }
    return id + "-" + pidNamespace();
  }

  /** The inode number of this process's PID namespace ("pid:[4026531836]"), or 0. */
  private static String pidNamespace() {
    try {
      String link = Files.readSymbolicLink(Path.of("/proc/self/ns/pid")).toString();
      String digits = link.replaceAll("[^0-9]", "");
      return digits.isEmpty() ? "0" : digits;
    } catch (IOException | RuntimeException e) {
      return "0";
    }
  }

  private static String read(Path p) {
    try {
      String s = Files.readString(p, StandardCharsets.US_ASCII).strip();
      s = s.replaceAll("[^A-Za-z0-9._-]", "");
      return s.length() > 64 ? s.substring(0, 64) : s;
    } catch (IOException | RuntimeException e) {
      return "";
    }
  }
}
