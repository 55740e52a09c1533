package dev.agentvm.core;

import java.time.Duration;
import java.util.Objects;

/**
 * What a running VM costs the host, measured by the hypervisor (not reported by the guest, which
 * could lie): the CPU time its vCPUs used since it started, and its QEMU process's resident memory.
 *
 * @param cpuTime CPU time of the VM's vCPUs so far (libvirt's domain info)
 * @param rssKiB resident memory of the VM's QEMU process, KiB; -1 if the hypervisor did not say
 */
public record VmStats(Duration cpuTime, long rssKiB) {
  public VmStats {
    Objects.requireNonNull(cpuTime, "cpuTime");
    if (cpuTime.isNegative()) {
      throw new IllegalArgumentException("cpuTime must not be negative, was " + cpuTime);
    }
  }
}
