package dev.agentvm.core.spi;

import java.util.List;
import java.util.Optional;

/**
 * The networks and nwfilters of a {@link HypervisorBackend}. Their XML documents pass through
 * unread: agent-vm-network writes and reads them (in one place, DOM); core never looks inside.
 * Thread-safe.
 */
public interface NetworkBackend {
  /** Names of all networks, active or not. */
  List<String> networkNames();

  /** A network's persistent definition, if it exists. */
  Optional<String> networkXml(String name);

  /** Defines a persistent network (not started). */
  void defineNetwork(String xml);

  boolean isNetworkActive(String name);

  void startNetwork(String name);

  void stopNetwork(String name);

  void undefineNetwork(String name);

  /**
   * Adds or removes a DHCP host reservation ({@code <host mac= ip= name=/>}) of a network, in its
   * definition and, if it runs, live ({@code virNetworkUpdate}). libvirt refuses to add an entry
   * whose MAC, IP or name is taken.
   */
  void updateDhcpHost(String network, boolean add, String hostXml);

  /** Names of all nwfilters. */
  List<String> filterNames();

  /** An nwfilter's definition, if it exists. */
  Optional<String> filterXml(String name);

  /** Defines (or redefines) an nwfilter. */
  void defineFilter(String xml);

  void undefineFilter(String name);
}
