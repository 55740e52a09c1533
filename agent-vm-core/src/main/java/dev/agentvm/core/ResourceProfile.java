package dev.agentvm.core;

/**
 * CPU, memory and disk I/O of a VM, and the host-side limits derived from them.
 *
 * <p>The limits bound what a guest can make its QEMU process take from the host, whatever the guest
 * does: the whole process (vCPUs and QEMU's own threads) gets at most {@code vcpus} CPUs of time;
 * its memory has a hard limit of {@code memoryMiB} plus QEMU's own overhead ({@link
 * #memoryHardLimitMiB}); each disk is throttled to the given rates. The CPU and memory limits use
 * the host's cgroups (through libvirt).
 *
 * @param vcpus virtual CPUs, 1..64
 * @param memoryMiB guest memory in MiB, at least 128 (the micro image's runtime needs about 100)
 * @param diskBytesPerSecond read+write bytes per second of each disk, 0 for no limit
 * @param diskIopsPerSecond read+write operations per second of each disk, 0 for no limit
 */
public record ResourceProfile(
    int vcpus, int memoryMiB, long diskBytesPerSecond, int diskIopsPerSecond) {
  /** Per-disk byte rate of the two-argument constructor: far above what a TCG guest reaches. */
  public static final long DEFAULT_DISK_BYTES_PER_SECOND = 256L << 20;

  /** Per-disk operation rate of the two-argument constructor. */
  public static final int DEFAULT_DISK_IOPS = 4000;

  public static final ResourceProfile LIGHT = new ResourceProfile(1, 256);
  public static final ResourceProfile STANDARD = new ResourceProfile(2, 1024);
  public static final ResourceProfile INTENSIVE = new ResourceProfile(4, 4096);

  public ResourceProfile {
    if (vcpus < 1 || vcpus > 64) {
      throw new IllegalArgumentException("vcpus must be 1..64, was " + vcpus);
    }
    if (memoryMiB < 128) {
      throw new IllegalArgumentException("memoryMiB must be >= 128, was " + memoryMiB);
    }
    if (diskBytesPerSecond < 0 || diskIopsPerSecond < 0) {
      throw new IllegalArgumentException(
          "disk limits must be >= 0 (0: none), were "
              + diskBytesPerSecond
              + " B/s and "
              + diskIopsPerSecond
              + " IOPS");
    }
  }

  /** A profile with the default disk limits. */
  public ResourceProfile(int vcpus, int memoryMiB) {
    this(vcpus, memoryMiB, DEFAULT_DISK_BYTES_PER_SECOND, DEFAULT_DISK_IOPS);
  }

  /** This profile with other per-disk limits (0: none). */
  public ResourceProfile withDiskLimits(long bytesPerSecond, int iopsPerSecond) {
    return new ResourceProfile(vcpus, memoryMiB, bytesPerSecond, iopsPerSecond);
  }

  /**
   * The hard limit on the QEMU process's memory: the guest's memory, plus 384 MiB for QEMU itself,
   * plus 1 GiB under TCG (QEMU's translated-code buffer, which fills as the guest runs new code).
   * Past it the host kernel reclaims from, and at worst kills, that QEMU: never another process.
   */
  public long memoryHardLimitMiB(VirtType type) {
    return memoryMiB + 384L + (type == VirtType.KVM ? 0 : 1024);
  }
}
