package dev.agentvm.core.internal.libvirt;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;

/**
 * The few libvirt C calls libvirt-java does not bind. Loaded lazily from {@code libvirt.so.0}; a
 * load failure is kept and reported when a call needs it, never thrown from class init.
 */
interface LibvirtNative extends Library {
  int VIR_DOMAIN_SHUTOFF = 5;
  int VIR_DOMAIN_SHUTOFF_CRASHED = 3;
  int VIR_DOMAIN_SHUTOFF_FAILED = 6;

  Pointer virDomainLookupByUUIDString(Pointer conn, String uuid);

  int virDomainGetState(Pointer domain, IntByReference state, IntByReference reason, int flags);

  int virDomainFree(Pointer domain);

  /** Holder for lazy loading. */
  final class Holder {
    static final LibvirtNative INSTANCE;
    static final Throwable LOAD_FAILURE;

    static {
      LibvirtNative lib = null;
      Throwable failure = null;
      try {
        lib = Native.load("virt", LibvirtNative.class);
      } catch (Throwable t) { // UnsatisfiedLinkError and friends: report on use
        failure = t;
      }
      INSTANCE = lib;
      LOAD_FAILURE = failure;
    }

    private Holder() {}
  }
}
