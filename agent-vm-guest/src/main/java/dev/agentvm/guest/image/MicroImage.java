package dev.agentvm.guest.image;

import java.nio.file.Path;

/**
 * A built micro guest image: a kernel and an initramfs that boots straight into the guest agent.
 *
 * @param directory the cache directory holding the files
 * @param kernel the kernel to boot: the uncompressed ELF {@code vmlinux} (PVH entry) where the
 *     kernel supports it, else the stock compressed bzImage
 * @param stockKernel the distribution's compressed bzImage, as shipped
 * @param initramfs the initramfs with busybox, a java.base runtime and the guest agent
 * @param bareInitramfs a busybox-only initramfs whose /init prints its uptime and powers off; used
 *     to measure bare kernel boot time beside the full image
 * @param kernelRelease the kernel release, e.g. {@code 6.1.0-28-amd64}
 * @param sizeBytes size of kernel plus initramfs
 */
public record MicroImage(
    Path directory,
    Path kernel,
    Path stockKernel,
    Path initramfs,
    Path bareInitramfs,
    String kernelRelease,
    long sizeBytes) {

  /** Kernel command line for this image: serial console, quiet, reboot on panic. */
  public static final String DEFAULT_CMDLINE = "console=ttyS0 loglevel=4 panic=-1";
}
