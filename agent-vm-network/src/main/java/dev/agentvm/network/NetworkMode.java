package dev.agentvm.network;

/**
 * How a VM reaches the network.
 *
 * <p>For agents that need the internet, use {@link #NAT_FILTERED} with the narrowest allow-list
 * that works; for everything else {@link #NONE}, the default: a VM without a NIC cannot leak data
 * or attack anything, whatever runs in it.
 */
public enum NetworkMode {
  /** No NIC at all. The default, and the safest. */
  NONE,
  /**
   * A private libvirt network without forwarding: VMs reach each other and the network's host
   * address (DHCP and DNS from libvirt's dnsmasq there), nothing beyond.
   */
  ISOLATED,
  /**
   * NAT to the outside, with an nwfilter allow-list on each VM's NIC: DNS, HTTP, HTTPS and SSH out
   * by default, plus the ports and CIDRs the caller adds; replies to allowed connections in;
   * everything else, unsolicited inbound above all, dropped.
   */
  NAT_FILTERED,
  /** Attached to an existing host bridge, as a machine on that LAN. No filtering by agent-vm. */
  BRIDGE
}
