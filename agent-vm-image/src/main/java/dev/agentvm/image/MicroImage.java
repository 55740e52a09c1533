package dev.agentvm.image;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

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
 * @param packages the Debian packages of this flavour (empty for the plain micro image)
 * @param packageDisk the flavour's read-only ext4 disk, to be attached read-only and mounted on
 *     {@code /usr} ({@link #PACKAGE_DISK_MOUNT_POINT}), or {@code null} for the plain image
 */
public record MicroImage(
    Path directory,
    Path kernel,
    Path stockKernel,
    Path initramfs,
    Path bareInitramfs,
    String kernelRelease,
    long sizeBytes,
    List<String> packages,
    @Nullable Path packageDisk) {

  /** Python 3 only: {@code python3 agent.py} works. */
  public static final List<String> PYTHON = List.of("python3");

  /** Python 3 and git, for coding agents. */
  public static final List<String> PYTHON_GIT = List.of("python3", "git");

  /** Where {@code /init} mounts the package disk. */
  public static final String PACKAGE_DISK_MOUNT_POINT = "/usr";

  public MicroImage {
    packages = List.copyOf(packages);
  }

  /** The package disk, if this flavour has one. */
  public Optional<Path> packageDiskIfAny() {
    return Optional.ofNullable(packageDisk);
  }

  /** Kernel command line for this image: serial console, quiet, reboot on panic. */
  public static final String DEFAULT_CMDLINE = "console=ttyS0 loglevel=4 panic=-1";
}
