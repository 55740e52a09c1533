package dev.agentvm.core;

import java.nio.file.Path;
import java.util.Objects;

/**
 * Direct kernel boot: a kernel, an initramfs and the kernel command line (leading and trailing
 * blanks removed).
 *
 * @param kernel path of the kernel image, readable by the hypervisor's QEMU user
 * @param initrd path of the initramfs, readable by the hypervisor's QEMU user
 * @param cmdline kernel command line
 */
public record BootSource(Path kernel, Path initrd, String cmdline) {
  public BootSource {
    Objects.requireNonNull(kernel, "kernel");
    Objects.requireNonNull(initrd, "initrd");
    Objects.requireNonNull(cmdline, "cmdline");
    kernel = kernel.toAbsolutePath();
    cmdline = cmdline.strip();
    initrd = initrd.toAbsolutePath();
  }

  /** The same boot source with words appended to the command line. */
  public BootSource withExtraCmdline(String extra) {
    return new BootSource(kernel, initrd, (cmdline + " " + extra).trim());
  }
}
