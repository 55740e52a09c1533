package dev.agentvm.core;

/**
 * What a libvirt host has, as its daemon reports it: the basis of placement across hosts.
 *
 * @param cpus the host's logical CPUs
 * @param totalBytes the host's memory
 * @param availableBytes memory not in use by processes: free, plus page cache and buffers (which
 *     the kernel gives back on demand)
 * @param activeDomains running or paused domains, agent-vm's or not
 */
public record HostCapacity(int cpus, long totalBytes, long availableBytes, int activeDomains) {
  /** Checks the numbers are possible. */
  public HostCapacity {
    if (cpus < 1 || totalBytes < 0 || availableBytes < 0 || activeDomains < 0) {
      throw new IllegalArgumentException(
          "impossible host capacity: "
              + cpus
              + " CPUs, "
              + totalBytes
              + " B total, "
              + availableBytes
              + " B available, "
              + activeDomains
              + " domains");
    }
  }
}
