package dev.agentvm.network;

import static dev.agentvm.internal.SecureXml.child;
import static dev.agentvm.internal.SecureXml.text;
import static dev.agentvm.internal.SecureXml.textOf;

import dev.agentvm.internal.SecureXml;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/**
 * libvirt network and nwfilter XML for {@link NetworkSpec} and {@link FilterSpec}, built as DOM (so
 * every value is escaped) and read back into specs, to check that what libvirt holds is what we
 * asked for.
 */
final class NetworkXml {
  /** Namespace of the ownership marker in a network's {@code <metadata>}. */
  static final String NS = "https://agentvm.dev/xmlns/network/1";

  private NetworkXml() {}

  static String network(NetworkSpec s) {
    Document d = SecureXml.newDocument();
    Element net = d.createElement("network");
    d.appendChild(net);
    text(d, net, "name", s.name());
    text(d, net, "uuid", s.uuid().toString());
    Element meta = child(d, net, "metadata");
    Element mark = d.createElementNS(NS, "agentvm:network");
    mark.setAttribute("mode", s.mode().name());
    meta.appendChild(mark);
    if (s.mode() == NetworkMode.NAT_FILTERED) {
      child(d, net, "forward").setAttribute("mode", "nat");
    }
    Element br = child(d, net, "bridge");
    br.setAttribute("name", s.bridge());
    br.setAttribute("stp", "off");
    Cidr subnet = s.subnet();
    if (subnet != null) {
      Element ip = child(d, net, "ip");
      ip.setAttribute("address", s.hostAddress());
      ip.setAttribute("netmask", subnet.netmask());
      Element range = child(d, child(d, ip, "dhcp"), "range");
      range.setAttribute("start", s.dhcpStart());
      range.setAttribute("end", s.dhcpEnd());
    }
    return serialise(d);
  }

  /**
   * Reads a network definition back.
   *
   * @return the spec, or null if the network carries no agent-vm marker (it is not ours)
   */
  static @Nullable NetworkSpec parseNetwork(String xml) {
    Element net = parse(xml);
    NodeList marks = net.getElementsByTagNameNS(NS, "network");
    if (marks.getLength() == 0) {
      return null;
    }
    NetworkMode mode = NetworkMode.valueOf(((Element) marks.item(0)).getAttribute("mode"));
    @Nullable Cidr subnet = null;
    NodeList ips = net.getElementsByTagName("ip");
    if (ips.getLength() > 0) {
      Element ip = (Element) ips.item(0);
      Ipv4 host = Ipv4.parse(ip.getAttribute("address"));
      int prefix = Integer.bitCount(Ipv4.parse(ip.getAttribute("netmask")).bits());
      subnet = new Cidr(new Ipv4(host.bits() & Ipv4.mask(prefix).bits()).toString(), prefix);
    }
    return new NetworkSpec(textOf(net, "name"), mode, subnet);
  }

  /** The DHCP reservations of a network: {@code {mac, ip, name}} each. */
  static List<String[]> dhcpHosts(String xml) {
    List<String[]> out = new ArrayList<>();
    NodeList hosts = parse(xml).getElementsByTagName("host");
    for (int i = 0; i < hosts.getLength(); i++) {
      Element h = (Element) hosts.item(i);
      out.add(new String[] {h.getAttribute("mac"), h.getAttribute("ip"), h.getAttribute("name")});
    }
    return out;
  }

  static String dhcpHost(String mac, String ip, String name) {
    Document d = SecureXml.newDocument();
    Element h = d.createElement("host");
    h.setAttribute("mac", mac);
    h.setAttribute("ip", ip);
    h.setAttribute("name", name);
    d.appendChild(h);
    return serialise(d);
  }

  /** Filter parameter: the host's address on the network (DHCP and DNS server). */
  static final String HOST_PARAM = "AGENTVM_HOST";

  /** Filter parameter: the network's address; with {@link #NETMASK_PARAM}, where the peers are. */
  static final String NET_PARAM = "AGENTVM_NET";

  /**
   * Filter parameters: where DHCP answers may come from (the network's host, /32; anywhere on a
   * layer-2 network, whose server agent-vm does not know).
   */
  static final String DHCP_PARAM = "AGENTVM_DHCP";

  static final String DHCP_MASK_PARAM = "AGENTVM_DHCPMASK";

  /** Filter parameter: the network's prefix length. */
  static final String NETMASK_PARAM = "AGENTVM_NETMASK";

  /** Priorities of our rules: libvirt evaluates lower numbers first. */
  static final int DHCP = 200;

  static final int DNS_TO_HOST = 210;
  static final int NAMED = 230;
  static final int DENY_HOST = 240;
  static final int PEERS = 250;
  static final int DENY = 260;
  static final int ANY = 300;
  static final int ESTABLISHED = 400;

  /**
   * The nwfilter for {@code s}; see {@link FilterSpec} for what it lets through. The host's address
   * and the network's subnet are filter parameters ({@link #HOST_PARAM}, {@link #NET_PARAM}, {@link
   * #NETMASK_PARAM}) that {@link Networks#nic} sets per NIC, so one filter serves any network; IP
   * (for clean-traffic) is the VM's reserved address.
   */
  static String filter(FilterSpec s) {
    Document d = SecureXml.newDocument();
    Element f = d.createElement("filter");
    d.appendChild(f);
    f.setAttribute("name", s.name());
    f.setAttribute("chain", "root");
    text(d, f, "uuid", s.uuid().toString());
    // no MAC, IP or ARP spoofing, no other layer-2 protocols (libvirt's own filters)
    child(d, f, "filterref").setAttribute("filter", "clean-traffic");
    rule(d, f, "accept", "inout", 150, "mac").setAttribute("protocolid", "ipv4");
    // the VM's own DHCP
    Element dhcpOut = rule(d, f, "accept", "out", DHCP, "udp");
    dhcpOut.setAttribute("srcportstart", "68");
    dhcpOut.setAttribute("dstportstart", "67");
    Element dhcpIn = rule(d, f, "accept", "in", DHCP, "udp");
    dhcpIn.setAttribute("srcportstart", "67");
    dhcpIn.setAttribute("dstportstart", "68");
    // only from the network's DHCP server: libvirt learns an address from every DHCP answer it
    // sees, and a peer's forged one would give the guest another address to send from
    dhcpIn.setAttribute("srcipaddr", "$" + DHCP_PARAM);
    dhcpIn.setAttribute("srcipmask", "$" + DHCP_MASK_PARAM);
    // DNS to the host's address (libvirt's dnsmasq)
    for (String proto : List.of("udp", "tcp")) {
      Element dns = rule(d, f, "accept", "out", DNS_TO_HOST, proto);
      dns.setAttribute("dstipaddr", "$" + HOST_PARAM);
      dns.setAttribute("dstportstart", "53");
    }
    for (AllowRule a : s.allowed()) {
      Cidr dest = a.destination();
      Element r = rule(d, f, "accept", "out", dest == null ? ANY : NAMED, a.protocol());
      if (dest != null) {
        r.setAttribute("dstipaddr", dest.address());
        r.setAttribute("dstipmask", Integer.toString(dest.prefix()));
      }
      r.setAttribute("dstportstart", Integer.toString(a.portStart()));
      r.setAttribute("dstportend", Integer.toString(a.portEnd()));
    }
    rule(d, f, "drop", "out", DENY_HOST, "all").setAttribute("dstipaddr", "$" + HOST_PARAM);
    if (s.peers()) {
      Element out = rule(d, f, "accept", "out", PEERS, "all");
      out.setAttribute("dstipaddr", "$" + NET_PARAM);
      out.setAttribute("dstipmask", "$" + NETMASK_PARAM);
      Element in = rule(d, f, "accept", "in", PEERS, "all");
      in.setAttribute("srcipaddr", "$" + NET_PARAM);
      in.setAttribute("srcipmask", "$" + NETMASK_PARAM);
    }
    Element subnet = rule(d, f, "drop", "out", DENY, "all");
    subnet.setAttribute("dstipaddr", "$" + NET_PARAM);
    subnet.setAttribute("dstipmask", "$" + NETMASK_PARAM);
    for (Cidr c : FilterSpec.DENIED) {
      Element r = rule(d, f, "drop", "out", DENY, "all");
      r.setAttribute("dstipaddr", c.address());
      r.setAttribute("dstipmask", Integer.toString(c.prefix()));
    }
    rule(d, f, "accept", "in", ESTABLISHED, "all").setAttribute("state", "ESTABLISHED,RELATED");
    rule(d, f, "drop", "inout", 1000, "all");
    rule(d, f, "drop", "inout", 1000, "all-ipv6");
    rule(d, f, "drop", "inout", 1010, "mac");
    return serialise(d);
  }

  /**
   * Reads a filter back; only its allow rules (priorities {@link #NAMED} and {@link #ANY}) and
   * whether it lets peers through vary between our filters.
   */
  static FilterSpec parseFilter(String xml) {
    Element f = parse(xml);
    List<AllowRule> allowed = new ArrayList<>();
    boolean peers = false;
    NodeList rules = f.getElementsByTagName("rule");
    for (int i = 0; i < rules.getLength(); i++) {
      Element r = (Element) rules.item(i);
      String prio = r.getAttribute("priority");
      if (!"accept".equals(r.getAttribute("action"))) {
        continue;
      }
      if (String.valueOf(PEERS).equals(prio)) {
        peers = true;
        continue;
      }
      if (!String.valueOf(NAMED).equals(prio) && !String.valueOf(ANY).equals(prio)) {
        continue;
      }
      Element p = firstElement(r);
      @Nullable Cidr dest =
          p.hasAttribute("dstipaddr")
              ? new Cidr(p.getAttribute("dstipaddr"), Integer.parseInt(p.getAttribute("dstipmask")))
              : null;
      int start = Integer.parseInt(p.getAttribute("dstportstart"));
      int end =
          p.hasAttribute("dstportend") ? Integer.parseInt(p.getAttribute("dstportend")) : start;
      allowed.add(new AllowRule(p.getTagName(), dest, start, end));
    }
    return new FilterSpec(f.getAttribute("name"), allowed, peers);
  }

  static String uuidOf(String xml) {
    return textOf(parse(xml), "uuid");
  }

  private static Element rule(
      Document d, Element f, String action, String dir, int prio, String proto) {
    Element r = child(d, f, "rule");
    r.setAttribute("action", action);
    r.setAttribute("direction", dir);
    r.setAttribute("priority", Integer.toString(prio));
    return child(d, r, proto);
  }

  private static Element firstElement(Element e) {
    for (var n = e.getFirstChild(); n != null; n = n.getNextSibling()) {
      if (n instanceof Element el) {
        return el;
      }
    }
    throw new IllegalArgumentException("empty <" + e.getTagName() + ">");
  }

  private static Element parse(String xml) {
    return SecureXml.parse(xml).getDocumentElement();
  }

  private static String serialise(Document d) {
    return SecureXml.serialise(d, true);
  }
}
