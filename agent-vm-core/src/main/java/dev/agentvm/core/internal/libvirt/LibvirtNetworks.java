package dev.agentvm.core.internal.libvirt;

import com.sun.jna.Pointer;
import dev.agentvm.core.HypervisorException;
import dev.agentvm.core.spi.NetworkBackend;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.libvirt.Error;
import org.libvirt.LibvirtException;
import org.libvirt.Network;
import org.libvirt.NetworkFilter;

/** libvirt's networks and nwfilters ({@link NetworkBackend}); their XML passes through unread. */
final class LibvirtNetworks implements NetworkBackend {
  private static final int VIR_NETWORK_XML_INACTIVE = 1;

  private final LibvirtSession session;

  LibvirtNetworks(LibvirtSession session) {
    this.session = session;
  }

  @Override
  public List<String> networkNames() {
    List<String> names =
        new ArrayList<>(
            List.of(session.call("list networks", () -> session.connect().listNetworks())));
    names.addAll(
        List.of(session.call("list networks", () -> session.connect().listDefinedNetworks())));
    return names;
  }

  @Override
  public Optional<String> networkXml(String name) {
    return ifExists(
        "read network " + name,
        Error.ErrorNumber.VIR_ERR_NO_NETWORK,
        () -> {
          Network n = session.connect().networkLookupByName(name);
          try {
            return n.getXMLDesc(VIR_NETWORK_XML_INACTIVE);
          } finally {
            n.free();
          }
        });
  }

  /** The call's result, or empty if libvirt says the object {@code absent} does not exist. */
  private Optional<String> ifExists(
      String operation, Error.ErrorNumber absent, LibvirtSession.LibvirtCall<String> c) {
    try {
      return Optional.of(c.call());
    } catch (LibvirtException e) {
      if (e.getError() != null && e.getError().getCode() == absent) {
        return Optional.empty();
      }
      throw LibvirtErrors.translate(session.uri(), operation, e);
    }
  }

  @Override
  public void defineNetwork(String xml) {
    session.run("define network", () -> session.connect().networkDefineXML(xml).free());
  }

  @Override
  public boolean isNetworkActive(String name) {
    return onNetwork(name, "read state of", n -> n.isActive() == 1);
  }

  @Override
  public void startNetwork(String name) {
    onNetworkDo(name, "start", Network::create);
  }

  @Override
  public void stopNetwork(String name) {
    onNetworkDo(name, "stop", Network::destroy);
  }

  @Override
  public void undefineNetwork(String name) {
    onNetworkDo(name, "undefine", Network::undefine);
  }

  private void onNetworkDo(String name, String what, NetworkAction a) {
    onNetwork(
        name,
        what,
        n -> {
          a.run(n);
          return Boolean.TRUE;
        });
  }

  @FunctionalInterface
  private interface NetworkAction {
    void run(Network n) throws LibvirtException;
  }

  private <T> T onNetwork(String name, String what, NetworkCall<T> c) {
    return session.call(
        what + " network " + name,
        () -> {
          Network n = session.connect().networkLookupByName(name);
          try {
            return c.call(n);
          } finally {
            n.free();
          }
        });
  }

  @FunctionalInterface
  private interface NetworkCall<T> {
    T call(Network n) throws LibvirtException;
  }

  @Override
  public void updateDhcpHost(String network, boolean add, String hostXml) {
    LibvirtNative lib = LibvirtNative.get();
    Pointer conn = session.nativeConnection();
    int flags =
        LibvirtNative.VIR_NETWORK_UPDATE_AFFECT_CONFIG
            | (isNetworkActive(network) ? LibvirtNative.VIR_NETWORK_UPDATE_AFFECT_LIVE : 0);
    Pointer n = lib.virNetworkLookupByName(conn, network);
    if (n == null) {
      throw new HypervisorException(
          "network " + network + ": " + lib.virGetLastErrorMessage(), null);
    }
    try {
      if (lib.virNetworkUpdate(
              n,
              add
                  ? LibvirtNative.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
                  : LibvirtNative.VIR_NETWORK_UPDATE_COMMAND_DELETE,
              LibvirtNative.VIR_NETWORK_SECTION_IP_DHCP_HOST,
              -1,
              hostXml,
              flags)
          != 0) {
        throw new HypervisorException(
            (add ? "adding " : "removing ")
                + hostXml
                + (add ? " to " : " from ")
                + network
                + " failed: "
                + lib.virGetLastErrorMessage(),
            null);
      }
    } finally {
      lib.virNetworkFree(n);
    }
  }

  @Override
  public List<String> filterNames() {
    return List.of(session.call("list nwfilters", () -> session.connect().listNetworkFilters()));
  }

  @Override
  public Optional<String> filterXml(String name) {
    return ifExists(
        "read nwfilter " + name,
        Error.ErrorNumber.VIR_ERR_NO_NWFILTER,
        () -> {
          NetworkFilter f = session.connect().networkFilterLookupByName(name);
          try {
            return f.getXMLDesc();
          } finally {
            f.free();
          }
        });
  }

  @Override
  public void defineFilter(String xml) {
    session.run("define nwfilter", () -> session.connect().networkFilterDefineXML(xml).free());
  }

  @Override
  public void undefineFilter(String name) {
    session.run(
        "undefine nwfilter " + name,
        () -> {
          NetworkFilter f = session.connect().networkFilterLookupByName(name);
          try {
            f.undefine();
          } finally {
            f.free();
          }
        });
  }
}
