package dev.agentvm.core;

import java.util.Locale;
import org.jspecify.annotations.Nullable;

/**
 * How guests are virtualised. {@link #AUTO} (the default) uses KVM only where a probe boot showed
 * that KVM really boots a kernel on this host, and TCG otherwise; see {@link VirtTypeSelector}.
 */
public enum VirtType {
  AUTO(null),
  /** Hardware virtualisation: libvirt {@code <domain type='kvm'>}. */
  KVM("kvm"),
  /**
   * QEMU's software emulation (TCG): libvirt {@code <domain type='qemu'>}. Slow, works anywhere.
   */
  QEMU("qemu");

  /**
   * Environment variable that overrides the configured type: {@code auto}, {@code kvm} or {@code
   * qemu}.
   */
  public static final String ENV = "AGENTVM_VIRT_TYPE";

  private final @Nullable String libvirtName;

  VirtType(@Nullable String libvirtName) {
    this.libvirtName = libvirtName;
  }

  /** The libvirt domain type; not defined for {@link #AUTO}. */
  public String libvirtName() {
    if (libvirtName == null) {
      throw new IllegalStateException("AUTO must be resolved to KVM or QEMU first");
    }
    return libvirtName;
  }

  /** Parses {@code auto}, {@code kvm}, {@code qemu} or {@code tcg} (an alias of qemu). */
  public static VirtType parse(String s) {
    return switch (s.trim().toLowerCase(Locale.ROOT)) {
      case "auto" -> AUTO;
      case "kvm" -> KVM;
      case "qemu", "tcg" -> QEMU;
      default ->
          throw new IllegalArgumentException(ENV + " must be auto, kvm or qemu, was '" + s + "'");
    };
  }
}
