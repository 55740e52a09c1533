package dev.agentvm.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * How the host confines the QEMU processes that run the guests, as libvirt reports it: its security
 * drivers (SELinux, AppArmor, DAC) and the user QEMU runs as, and whether this is a per-user
 * session. {@link #warnings()} says in plain words what is missing; {@link LibvirtConnection#open}
 * logs them once.
 *
 * @param uri the libvirt URI
 * @param securityDrivers the security models libvirt offers, e.g. {@code [dac]}, {@code [apparmor,
 *     dac]}; {@code none} is left out
 * @param qemuUser DAC's label for QEMU ({@code +uid:+gid}), or empty when libvirt names none
 * @param seccompSandbox whether QEMU starts with its seccomp sandbox (qemu.conf's {@code
 *     seccomp_sandbox}, on by default), when this process can read a local qemu.conf; else empty
 *     ({@link #seccompSandbox(String)} tells for a running domain)
 * @param memoryHardLimit whether domains get their memory hard limit here (see {@code
 *     Setting.MEMORY_HARD_LIMIT})
 */
public record QemuConfinement(
    String uri,
    List<String> securityDrivers,
    String qemuUser,
    Optional<Boolean> seccompSandbox,
    boolean memoryHardLimit) {

  public QemuConfinement {
    securityDrivers = List.copyOf(securityDrivers);
  }

  /** A per-user session URI ({@code qemu:///session}): QEMU runs as the user itself. */
  public boolean sessionMode() {
    return uri.contains("/session");
  }

  /** True when SELinux or AppArmor confines QEMU on top of its own user. */
  public boolean mandatoryAccessControl() {
    return securityDrivers.contains("selinux") || securityDrivers.contains("apparmor");
  }

  /** What is missing, one sentence each; empty when QEMU is confined as it should be. */
  public List<String> warnings() {
    List<String> w = new ArrayList<>();
    if (sessionMode()) {
      w.add(
          "libvirt session mode ("
              + uri
              + "): QEMU runs with this user's full rights, a QEMU escape gets all of them");
    } else if (qemuUser.equals("+0:+0") || qemuUser.startsWith("+0:")) {
      w.add("QEMU runs as root (qemu.conf user/group): a QEMU escape owns the host");
    }
    if (!memoryHardLimit) {
      w.add(
          "QEMU processes run without a memory hard limit (libvirtd may not raise their"
              + " locked-memory limit: no CAP_SYS_RESOURCE; or agentvm.memory.hardLimit=off)");
    }
    if (seccompSandbox.isPresent() && !seccompSandbox.get()) {
      w.add("QEMU runs without its seccomp sandbox (seccomp_sandbox = 0 in qemu.conf)");
    }
    if (!mandatoryAccessControl()) {
      w.add(
          "no SELinux or AppArmor confinement of QEMU (libvirt offers "
              + (securityDrivers.isEmpty() ? "none" : String.join(", ", securityDrivers))
              + "): a QEMU escape has every right of QEMU's user");
    }
    return w;
  }

  /** CAP_SYS_RESOURCE's bit in a process's capability sets. */
  private static final int CAP_SYS_RESOURCE = 24;

  /**
   * Whether domains of {@code uri} should get a memory hard limit: the setting's {@code on}/{@code
   * off}, else (auto) yes unless the local libvirt daemon runs without CAP_SYS_RESOURCE, which it
   * needs to raise QEMU's locked-memory limit to the hard limit (libvirt does so whenever one is
   * set, and QEMU does not start when it cannot).
   */
  public static boolean memoryHardLimitAllowed(String uri, String setting) {
    return switch (setting) {
      case "on" -> true;
      case "off" -> false;
      // a remote daemon: assume a normally privileged one
      default ->
          !uri.startsWith("qemu:///system")
              || daemonCapabilities().map(caps -> caps.testBit(CAP_SYS_RESOURCE)).orElse(true);
    };
  }

  /** The effective capabilities of the local libvirtd or virtqemud, if one is visible. */
  private static Optional<java.math.BigInteger> daemonCapabilities() {
    try (DirectoryStream<Path> procs = Files.newDirectoryStream(Path.of("/proc"), "[0-9]*")) {
      for (Path p : procs) {
        List<String> status;
        try {
          status = Files.readAllLines(p.resolve("status"), StandardCharsets.UTF_8);
        } catch (IOException e) {
          continue; // gone
        }
        if (status.isEmpty()
            || !(status.get(0).equals("Name:\tlibvirtd")
                || status.get(0).equals("Name:\tvirtqemud"))) {
          continue;
        }
        for (String line : status) {
          if (line.startsWith("CapEff:")) {
            return Optional.of(new java.math.BigInteger(line.substring(7).strip(), 16));
          }
        }
      }
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
    return Optional.empty();
  }

  /**
   * What a local {@code qemu.conf} says of the seccomp sandbox: empty when the file cannot be read
   * (a remote URI, a session URI, or no rights to read it); otherwise on unless a line sets {@code
   * seccomp_sandbox = 0}.
   */
  public static Optional<Boolean> seccompFromQemuConf(String uri, Path qemuConf) {
    if (!uri.startsWith("qemu:///system")) {
      return Optional.empty();
    }
    try {
      for (String line : Files.readAllLines(qemuConf, StandardCharsets.UTF_8)) {
        String l = line.strip();
        if (l.startsWith("seccomp_sandbox")) {
          return Optional.of(!l.replace(" ", "").equals("seccomp_sandbox=0"));
        }
      }
      return Optional.of(true);
    } catch (IOException | RuntimeException e) {
      return Optional.empty();
    }
  }

  /**
   * Whether the QEMU process running {@code domainName} on this machine was started with its
   * seccomp sandbox ({@code -sandbox on}, qemu.conf's {@code seccomp_sandbox}); empty when no such
   * process is visible here (a remote host, or the domain is not running).
   */
  public static Optional<Boolean> seccompSandbox(String domainName) {
    return qemuCommandLine(domainName).map(QemuConfinement::sandboxOn);
  }

  static boolean sandboxOn(List<String> args) {
    for (int i = 0; i + 1 < args.size(); i++) {
      if (args.get(i).equals("-sandbox") && args.get(i + 1).startsWith("on")) {
        return true;
      }
    }
    return false;
  }

  /** The command line of the local QEMU process whose {@code -name} is {@code guest=domainName}. */
  static Optional<List<String>> qemuCommandLine(String domainName) {
    return qemuProcess(domainName).map(p -> commandLine(p.resolve("cmdline")));
  }

  /** The {@code /proc/PID} directory of the local QEMU process running {@code domainName}. */
  static Optional<Path> qemuProcess(String domainName) {
    try (DirectoryStream<Path> procs = Files.newDirectoryStream(Path.of("/proc"), "[0-9]*")) {
      for (Path p : procs) {
        List<String> args = commandLine(p.resolve("cmdline"));
        if (!args.isEmpty() && args.get(0).contains("qemu") && namesDomain(args, domainName)) {
          return Optional.of(p);
        }
      }
    } catch (IOException e) {
      return Optional.empty(); // no /proc to read (not Linux, or hidden): unknown
    }
    return Optional.empty();
  }

  private static boolean namesDomain(List<String> args, String domainName) {
    for (int i = 0; i + 1 < args.size(); i++) {
      if (args.get(i).equals("-name")) {
        String v = args.get(i + 1);
        return v.equals("guest=" + domainName) || v.startsWith("guest=" + domainName + ",");
      }
    }
    return false;
  }

  private static List<String> commandLine(Path cmdline) {
    try {
      String all = new String(Files.readAllBytes(cmdline), StandardCharsets.UTF_8);
      return all.isEmpty() ? List.of() : List.of(all.split("\0", -1));
    } catch (IOException e) {
      return List.of(); // gone, or not ours to read
    }
  }
}
