package dev.agentvm.core.internal.libvirt;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;
import org.jspecify.annotations.Nullable;

/**
 * The few libvirt C calls libvirt-java does not bind. Loaded lazily from {@code libvirt.so.0}; a
 * load failure is kept and reported when a call needs it, never thrown from class init.
 */
interface LibvirtNative extends Library {
  int VIR_DOMAIN_SHUTOFF = 5;
  int VIR_DOMAIN_SHUTOFF_CRASHED = 3;
  int VIR_DOMAIN_SHUTOFF_FAILED = 6;

  @Nullable Pointer virDomainLookupByUUIDString(Pointer conn, String uuid);

  int virDomainGetState(Pointer domain, IntByReference state, IntByReference reason, int flags);

  int virDomainFree(Pointer domain);

  int virDomainSaveFlags(Pointer domain, String to, @Nullable String dxml, int flags);

  int virDomainRestoreFlags(Pointer conn, String from, @Nullable String dxml, int flags);

  int virDomainOpenChannel(Pointer domain, String name, Pointer stream, int flags);

  /** {@code devName} null: the first console. */
  int virDomainOpenConsole(Pointer domain, @Nullable String devName, Pointer stream, int flags);

  /** virDomainOpenConsole flag: fail rather than take over a console someone else holds. */
  int VIR_DOMAIN_CONSOLE_SAFE = 2;

  /** Returns a string the caller frees with {@code Native.free}. */
  @Nullable Pointer virDomainSaveImageGetXMLDesc(Pointer conn, String file, int flags);

  /**
   * Fills {@code params} ({@code nparams} records of {@link #MEMORY_STATS_RECORD} bytes: an 80-byte
   * field name, then the value in KiB); with a null {@code params} and 0, sets {@code nparams}.
   */
  int virNodeGetMemoryStats(
      Pointer conn, int cellNum, @Nullable Pointer params, IntByReference nparams, int flags);

  int VIR_NODE_MEMORY_STATS_ALL_CELLS = -1;
  int VIR_NODE_MEMORY_STATS_FIELD_LENGTH = 80;
  int MEMORY_STATS_RECORD = 88;

  @Nullable Pointer virConnectOpen(String uri);

  int virConnectClose(Pointer conn);

  int virConnectSetKeepAlive(Pointer conn, int interval, int count);

  int virConnectIsAlive(Pointer conn);

  @Nullable Pointer virStreamNew(Pointer conn, int flags);

  int virStreamRecv(Pointer stream, byte[] data, NativeLong nbytes);

  int virStreamSend(Pointer stream, byte[] data, NativeLong nbytes);

  int virStreamFinish(Pointer stream);

  int virStreamAbort(Pointer stream);

  int virStreamFree(Pointer stream);

  /** {@code virStreamEventCallback}: called on libvirt's event loop thread. */
  interface StreamEventCallback extends com.sun.jna.Callback {
    void invoke(Pointer stream, int events, @Nullable Pointer opaque);
  }

  /** {@code virFreeCallback}: libvirt is done with a callback. */
  interface FreeCallback extends com.sun.jna.Callback {
    void invoke(@Nullable Pointer opaque);
  }

  int virStreamEventAddCallback(
      Pointer stream,
      int events,
      StreamEventCallback cb,
      @Nullable Pointer opaque,
      @Nullable FreeCallback ff);

  int virStreamEventUpdateCallback(Pointer stream, int events);

  int virStreamEventRemoveCallback(Pointer stream);

  /** {@code virConnectCloseFunc}: the connection closed (called on the event loop thread). */
  interface ConnectCloseCallback extends com.sun.jna.Callback {
    void invoke(Pointer conn, int reason, @Nullable Pointer opaque);
  }

  int virConnectRegisterCloseCallback(
      Pointer conn, ConnectCloseCallback cb, @Nullable Pointer opaque, @Nullable FreeCallback ff);

  int virConnectUnregisterCloseCallback(Pointer conn, ConnectCloseCallback cb);

  @Nullable String virGetLastErrorMessage();

  @Nullable Pointer virNetworkLookupByName(Pointer conn, String name);

  int virNetworkUpdate(
      Pointer network, int command, int section, int parentIndex, String xml, int flags);

  int virNetworkFree(Pointer network);

  int VIR_NETWORK_UPDATE_COMMAND_DELETE = 2;
  int VIR_NETWORK_UPDATE_COMMAND_ADD_LAST = 3;
  int VIR_NETWORK_SECTION_IP_DHCP_HOST = 4;
  int VIR_NETWORK_UPDATE_AFFECT_LIVE = 1;
  int VIR_NETWORK_UPDATE_AFFECT_CONFIG = 2;

  /** The library, or an exception saying why it could not be loaded. */
  static LibvirtNative get() {
    LibvirtNative lib = Holder.INSTANCE;
    if (lib == null) {
      throw new dev.agentvm.core.HypervisorException(
          "cannot load libvirt.so.0 through JNA: " + Holder.LOAD_FAILURE, Holder.LOAD_FAILURE);
    }
    return lib;
  }

  /** Holder for lazy loading. */
  final class Holder {
    static final @Nullable LibvirtNative INSTANCE;
    static final @Nullable Throwable LOAD_FAILURE;

    static {
      @Nullable LibvirtNative lib = null;
      @Nullable Throwable failure = null;
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
