package dev.agentvm.internal;

import java.util.Optional;

/**
 * Every setting agent-vm reads from its environment, in one place (docs/configuration.md lists
 * them).
 *
 * <p>Precedence, highest first: a value given through the API (a builder or method argument, at the
 * call site), the system property, the environment variable, the default. Blank values count as
 * absent.
 */
public enum Setting {
  /** The libvirt URI that {@code LibvirtConnection.open()} connects to. */
  LIBVIRT_URI("agentvm.libvirt.uri", "AGENTVM_LIBVIRT_URI"),
  /** Per-host state: VM runtime directories, workspaces, memory images, locks. */
  STATE_DIR("agentvm.state.dir", "AGENTVM_STATE_DIR"),
  /** Built guest images and downloaded packages. */
  CACHE_DIR("agentvm.cache.dir", "AGENTVM_CACHE_DIR"),
  /** {@code kvm}, {@code qemu} (TCG) or {@code auto} (probe, remembered per host). */
  VIRT_TYPE("agentvm.virt.type", "AGENTVM_VIRT_TYPE"),
  /** {@code off}: opening a connection does not reap what dead processes left behind. */
  REAP("agentvm.reap", "AGENTVM_REAP"),
  /**
   * {@code off}: no watchdog process. By default the first connection of a JVM starts a small
   * watchdog JVM that reaps what this JVM leaves (VMs, workspaces, memory images) within seconds of
   * its death, even when no other process opens a connection.
   */
  WATCHDOG("agentvm.watchdog", "AGENTVM_WATCHDOG"),
  /** {@code off}: no JVM shutdown hook; the application closes what it opened. */
  SHUTDOWN_HOOK("agentvm.shutdown.hook", "AGENTVM_SHUTDOWN_HOOK"),
  /**
   * {@code on}, {@code off} or {@code auto} (default): whether domains get a memory hard limit
   * ({@code memtune}). Auto leaves it out where libvirt cannot apply it: a local libvirtd without
   * CAP_SYS_RESOURCE cannot raise QEMU's locked-memory limit to it, and QEMU would not start.
   */
  MEMORY_HARD_LIMIT("agentvm.memory.hardLimit", "AGENTVM_MEMORY_HARD_LIMIT"),
  /** The user libvirt runs QEMU as (workspace ownership); default: libvirt's own default. */
  QEMU_USER("agentvm.qemu.user", "AGENTVM_QEMU_USER"),
  /**
   * Seconds without progress after which another client's image upload to a remote host counts as
   * abandoned and is sent again (default 15).
   */
  REMOTE_UPLOAD_STALL("agentvm.remote.uploadStallSeconds", "AGENTVM_REMOTE_UPLOAD_STALL_SECONDS"),
  /**
   * {@code off}: libvirt checks a starting or restored guest's CPU its own way, one monitor round
   * trip per CPU property (about 400 with QEMU 7.2, ~0.5 s per start under TCG). By default domains
   * ask libvirt for its two-query check of the same CPU features instead (a {@code
   * qemu:capabilities} entry; QEMU's command line is unchanged).
   */
  FAST_CPU_CHECK("agentvm.libvirt.fastCpuCheck", "AGENTVM_LIBVIRT_FAST_CPU_CHECK"),
  /** Where the JUnit extension keeps a failed test's console logs. */
  JUNIT_LOG_DIR("agentvm.junit.logDir", "AGENTVM_JUNIT_LOG_DIR");

  private final String property;
  private final String environmentVariable;

  Setting(String property, String environmentVariable) {
    this.property = property;
    this.environmentVariable = environmentVariable;
  }

  /** The system property that sets it. */
  public String property() {
    return property;
  }

  /** The environment variable that sets it. */
  public String environmentVariable() {
    return environmentVariable;
  }

  /** The value from the system property, else the environment; empty if neither has one. */
  public Optional<String> value() {
    String v = System.getProperty(property);
    if (v == null || v.isBlank()) {
      v = System.getenv(environmentVariable);
    }
    return v == null || v.isBlank() ? Optional.empty() : Optional.of(v.strip());
  }

  /** The value, or {@code fallback} when it is not set. */
  public String valueOr(String fallback) {
    return value().orElse(fallback);
  }

  /** Whether the value is {@code off} (any case); an unset switch is on. */
  public boolean isOff() {
    return value().map(v -> v.equalsIgnoreCase("off")).orElse(false);
  }
}
