package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.QemuConfinement;
import dev.agentvm.internal.AgentVmPaths;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** Every host check with a verdict and, where it is not ok, the fix. */
@Command(
    name = "doctor",
    mixinStandardHelpOptions = true,
    description = "Check this host: libvirt, KVM, QEMU's confinement, disk space, the image cache.")
final class DoctorCommand implements Callable<Integer> {
  static final long GIB = 1L << 30;

  @Mixin Options opts = new Options();

  @CommandLine.Option(names = "--json", description = "print JSON instead of text")
  boolean json;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /**
   * One check: {@code ok}, {@code warn} (works, with a cost), {@code fail} (does not work) or
   * {@code unknown} (could not be told).
   */
  record Check(String name, String verdict, String detail, String fix) {}

  @Override
  public Integer call() {
    List<Check> checks = new ArrayList<>();
    try (LibvirtConnection conn = opts.connect()) {
      checks.add(new Check("libvirt", "ok", "reachable at " + conn.uri(), ""));
      checks.add(step("virtualization", () -> virtualization(advertisesKvm(conn))));
      checks.add(step("confinement", () -> confinement(conn.confinement())));
    } catch (RuntimeException e) {
      checks.add(
          new Check(
              "libvirt",
              "fail",
              "cannot connect to " + opts.uri + ": " + e.getMessage(),
              "start libvirtd (bash scripts/setup-host.sh does, or systemctl start libvirtd) and"
                  + " let this user connect (group libvirt)"));
      checks.add(
          new Check(
              "virtualization", "unknown", "libvirt did not answer", "see the libvirt check"));
    }
    checks.add(space("state directory", AgentVmPaths.stateRoot()));
    checks.add(space("cache directory", AgentVmPaths.cacheRoot()));
    checks.add(images(AgentVmPaths.cacheRoot().resolve("images")));
    PrintWriter out = spec.commandLine().getOut();
    if (json) {
      Options.printJson(out, checks);
    } else {
      for (Check c : checks) {
        out.printf("%-5s %-16s %s%n", c.verdict(), c.name(), c.detail());
        if (!c.fix().isEmpty()) {
          out.printf("      %-16s fix: %s%n", "", c.fix());
        }
      }
      out.flush();
    }
    return checks.stream().anyMatch(c -> c.verdict().equals("fail")) ? 1 : 0;
  }

  private static boolean advertisesKvm(LibvirtConnection conn) {
    return conn.backend().advertisedDomainTypes().contains("kvm");
  }

  /** A check whose own step failed: {@code unknown}, with why. */
  private static Check step(String name, java.util.function.Supplier<Check> check) {
    try {
      return check.get();
    } catch (RuntimeException e) {
      return new Check(name, "unknown", "libvirt did not tell: " + e.getMessage(), "");
    }
  }

  static Check virtualization(boolean advertised) {
    Path kvm = Path.of("/dev/kvm");
    if (!Files.exists(kvm)) {
      return new Check(
          "virtualization",
          "warn",
          "no /dev/kvm: guests run under TCG (software emulation, several times slower)",
          "enable hardware virtualization (nested virtualization in a cloud VM) and load kvm");
    }
    if (!Files.isReadable(kvm) || !Files.isWritable(kvm)) {
      return new Check(
          "virtualization",
          "warn",
          "/dev/kvm is not read-writable by this user: guests run under TCG unless libvirt's QEMU"
              + " user may",
          "add the user to group kvm, or chmod 0666 /dev/kvm (bash scripts/setup-host.sh)");
    }
    if (!advertised) {
      return new Check(
          "virtualization",
          "warn",
          "/dev/kvm exists but libvirt offers no kvm domain type: guests run under TCG",
          "restart libvirtd after loading kvm, and check `virsh capabilities`");
    }
    return new Check(
        "virtualization",
        "ok",
        "KVM (a host whose KVM hangs guests is still caught by a probe at the first boot)",
        "");
  }

  static Check confinement(QemuConfinement q) {
    List<String> w = q.warnings();
    if (w.isEmpty()) {
      return new Check("confinement", "ok", "QEMU confined by " + q.securityDrivers(), "");
    }
    return new Check(
        "confinement",
        "warn",
        String.join("; ", w),
        "run libvirt's QEMU under AppArmor or SELinux (security_driver in qemu.conf), as a"
            + " non-root user, from a libvirtd with CAP_SYS_RESOURCE");
  }

  static Check space(String name, Path dir) {
    Path p = dir;
    while (p != null && !Files.exists(p)) {
      p = p.getParent();
    }
    if (p == null) {
      return new Check(name, "fail", dir + " has no existing parent", "create " + dir);
    }
    try {
      long free = Files.getFileStore(p).getUsableSpace();
      String detail = dir + ": " + free / (1L << 20) + " MiB free";
      if (free < GIB / 2) {
        return new Check(name, "fail", detail, "free space there, or move it to a larger disk");
      }
      if (free < 2 * GIB) {
        return new Check(
            name, "warn", detail + " (a sandbox's disk and memory image need hundreds)", "");
      }
      return new Check(name, "ok", detail, "");
    } catch (IOException e) {
      return new Check(name, "fail", dir + ": " + e.getMessage(), "check the directory");
    }
  }

  static Check images(Path images) {
    if (!Files.isDirectory(images)) {
      return new Check(
          "image cache",
          "warn",
          "no guest image built yet: the first sandbox builds one (about a minute)",
          "run the README's first command once");
    }
    try (Stream<Path> s = Files.list(images)) {
      List<Path> built =
          s.filter(p -> String.valueOf(p.getFileName()).startsWith("micro-")).toList();
      long bytes = 0;
      for (Path b : built) {
        bytes += PsCommand.size(b);
      }
      if (built.isEmpty()) {
        return new Check(
            "image cache",
            "warn",
            images + ": no image built yet",
            "run the README's first command once");
      }
      return new Check(
          "image cache",
          "ok",
          built.size() + " image(s), " + bytes / (1L << 20) + " MiB in " + images,
          "");
    } catch (IOException e) {
      return new Check("image cache", "fail", images + ": " + e.getMessage(), "check it");
    }
  }
}
