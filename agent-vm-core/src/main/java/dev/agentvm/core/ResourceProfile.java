package dev.agentvm.core;

/**
 * CPU and memory of a VM.
 *
 * @param vcpus virtual CPUs, 1..64
 * @param memoryMiB guest memory in MiB, at least 128 (the micro image's runtime needs about 100)
 */
public record ResourceProfile(int vcpus, int memoryMiB) {
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
  }
}
