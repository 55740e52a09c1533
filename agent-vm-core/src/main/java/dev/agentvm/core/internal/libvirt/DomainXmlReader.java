package dev.agentvm.core.internal.libvirt;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.NetworkAttachment;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import dev.agentvm.core.spi.DomainDescription;
import dev.agentvm.internal.Hashing;
import dev.agentvm.internal.SecureXml;
import java.nio.charset.StandardCharsets;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.jspecify.annotations.Nullable;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

/**
 * Reads libvirt XML: domain definitions (into a {@link DomainDescription}, or back into the {@link
 * VMTemplate} they were written from) and the host's capabilities. DOM through {@link SecureXml}
 * only (no DOCTYPE, nothing fetched); the one place agent-vm reads domain XML.
 */
public final class DomainXmlReader {
  private DomainXmlReader() {}

  /**
   * What agent-vm needs from a domain definition.
   *
   * @throws IllegalArgumentException if the XML cannot be read or names no domain
   */
  public static DomainDescription describe(String xml) {
    Document d = parse(xml);
    Element dom = d.getDocumentElement();
    if (!"domain".equals(dom.getTagName()) || textOf(dom, "name").isEmpty()) {
      throw new IllegalArgumentException("not a domain definition: <" + dom.getTagName() + ">");
    }
    Element meta = metadata(d);
    @Nullable VMTemplate template = null;
    if (meta != null) {
      try {
        template = template(d);
      } catch (IllegalArgumentException e) {
        // ours by its metadata, but changed beyond what a template can say (a customizer, a hand)
      }
    }
    String fingerprint = fingerprint(d); // last: it removes the metadata
    return new DomainDescription(
        textOf(dom, "name"),
        textOf(dom, "uuid"),
        meta == null ? null : meta.getAttribute("owner"),
        meta == null ? null : pathOrNull(meta.getAttribute("runDir")),
        template,
        hostPaths(dom),
        attributes(dom, "interface", "source", "network"),
        attributes(dom, "interface", "filterref", "filter"),
        fingerprint);
  }

  /**
   * Reads back the template a domain was defined from (the customizer's changes are not recovered;
   * the virt type is the one the XML names).
   *
   * @throws IllegalArgumentException if the XML is not a domain agent-vm defined
   */
  public static VMTemplate template(String xml) {
    return template(parse(xml));
  }

  private static VMTemplate template(Document d) {
    try {
      Element dom = d.getDocumentElement();
      Element meta = metadata(d);
      if (meta == null) {
        throw new IllegalArgumentException("domain has no agent-vm metadata");
      }
      VMTemplate.Builder b = VMTemplate.builder(textOf(dom, "name"));
      b.uuid(UUID.fromString(textOf(dom, "uuid")));
      if (!textOf(dom, "genid").isEmpty()) {
        b.genid(UUID.fromString(textOf(dom, "genid")));
      }
      b.runDir(Path.of(meta.getAttribute("runDir")));
      b.owner(meta.getAttribute("owner"));
      ResourceProfile resources =
          new ResourceProfile(Integer.parseInt(textOf(dom, "vcpu")), memoryMiB(dom));
      if (meta.hasAttribute("diskBytesPerSecond")) { // absent in definitions before 0.2.0
        resources =
            resources.withDiskLimits(
                Long.parseLong(meta.getAttribute("diskBytesPerSecond")),
                Integer.parseInt(meta.getAttribute("diskIopsPerSecond")));
      }
      b.resources(resources);
      Element os = first(dom, "os");
      String cmdline = textOf(os, "cmdline");
      Map<String, String> mounts = new HashMap<>();
      for (String arg : cmdline.split("\\s+", -1)) {
        if (arg.startsWith(DomainXmlWriter.MOUNT_ARG)) {
          String[] p = arg.substring(DomainXmlWriter.MOUNT_ARG.length()).split(":", -1);
          mounts.put(p[0], p.length > 1 ? p[1] : "");
        }
      }
      b.boot(
          new BootSource(
              Path.of(textOf(os, "kernel")),
              Path.of(textOf(os, "initrd")),
              userCmdlineOf(cmdline)));
      b.virtType("kvm".equals(dom.getAttribute("type")) ? VirtType.KVM : VirtType.QEMU);
      for (Element e : all(dom, "disk")) {
        String target = first(e, "target").getAttribute("dev");
        b.disk(
            new DiskAttachment(
                Path.of(first(e, "source").getAttribute("file")),
                "raw".equals(first(e, "driver").getAttribute("type"))
                    ? DiskAttachment.Format.RAW
                    : DiskAttachment.Format.QCOW2,
                target,
                !all(e, "readonly").isEmpty(),
                mounts.getOrDefault(target, "")));
      }
      for (Element e : all(dom, "filesystem")) {
        b.share(
            new ShareAttachment(
                Path.of(first(e, "source").getAttribute("dir")),
                first(e, "target").getAttribute("dir"),
                !all(e, "readonly").isEmpty()));
      }
      for (Element e : all(dom, "interface")) {
        b.nic(nic(e));
      }
      return b.build();
    } catch (IllegalArgumentException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("domain XML not made by agent-vm: " + e, e);
    }
  }

  /**
   * The command line as the template gave it: without the mount arguments the writer appended (the
   * blanks between the other words kept as they were).
   */
  private static String userCmdlineOf(String cmdline) {
    StringBuilder out = new StringBuilder();
    int i = 0;
    while (i < cmdline.length()) {
      int start = i;
      while (i < cmdline.length() && Character.isWhitespace(cmdline.charAt(i))) {
        i++;
      }
      int word = i;
      while (i < cmdline.length() && !Character.isWhitespace(cmdline.charAt(i))) {
        i++;
      }
      if (!cmdline.startsWith(DomainXmlWriter.MOUNT_ARG, word)) {
        out.append(cmdline, start, i);
      }
    }
    return out.toString().trim();
  }

  private static int memoryMiB(Element dom) {
    Element mem = first(dom, "memory");
    long memory = Long.parseLong(mem.getTextContent().trim());
    String unit = mem.getAttribute("unit");
    long mib =
        switch (unit.isEmpty() ? "KiB" : unit) {
          case "MiB", "M" -> memory;
          case "GiB", "G" -> memory * 1024;
          case "KiB", "k", "K" -> memory / 1024;
          case "b", "bytes" -> memory >> 20;
          default -> throw new IllegalArgumentException("memory unit " + unit);
        };
    return Math.toIntExact(mib);
  }

  private static NetworkAttachment nic(Element e) {
    boolean net = "network".equals(e.getAttribute("type"));
    Map<String, String> params = new HashMap<>();
    String filter = "";
    List<Element> refs = all(e, "filterref");
    if (!refs.isEmpty()) {
      filter = refs.get(0).getAttribute("filter");
      for (Element p : all(refs.get(0), "parameter")) {
        params.put(p.getAttribute("name"), p.getAttribute("value"));
      }
    }
    return new NetworkAttachment(
        net ? NetworkAttachment.Kind.NETWORK : NetworkAttachment.Kind.BRIDGE,
        first(e, "source").getAttribute(net ? "network" : "bridge"),
        first(e, "mac").getAttribute("address"),
        filter,
        params);
  }

  /** The domain's name. */
  static String name(String xml) {
    String name = textOf(parse(xml).getDocumentElement(), "name");
    if (name.isEmpty()) {
      throw new IllegalArgumentException("domain XML names no domain");
    }
    return name;
  }

  /**
   * The domain types (e.g. {@code kvm}, {@code qemu}) the host's capabilities offer for x86_64
   * guests.
   */
  static Set<String> x86DomainTypes(String capabilitiesXml) {
    Set<String> types = new LinkedHashSet<>();
    for (Element guest : all(parse(capabilitiesXml).getDocumentElement(), "guest")) {
      for (Element arch : all(guest, "arch")) {
        if ("x86_64".equals(arch.getAttribute("name"))) {
          for (Element domain : all(arch, "domain")) {
            types.add(domain.getAttribute("type"));
          }
        }
      }
    }
    types.remove("");
    return types;
  }

  /**
   * The security models of the host's capabilities ({@code <host><secmodel>}), {@code none} left
   * out, and DAC's base label for QEMU (the first one, e.g. {@code +64055:+64055}), or "".
   */
  static Map.Entry<List<String>, String> securityModels(String capabilitiesXml) {
    List<String> models = new ArrayList<>();
    String dacLabel = "";
    for (Element host : all(parse(capabilitiesXml).getDocumentElement(), "host")) {
      for (Element sec : all(host, "secmodel")) {
        String name = SecureXml.textOf(sec, "model");
        if (!name.isEmpty() && !name.equals("none")) {
          models.add(name);
        }
        List<Element> labels = all(sec, "baselabel");
        if (name.equals("dac") && !labels.isEmpty() && dacLabel.isEmpty()) {
          dacLabel = labels.get(0).getTextContent().trim();
        }
      }
    }
    return Map.entry(models, dacLabel);
  }

  /** Every host path the definition refers to. */
  private static List<Path> hostPaths(Element dom) {
    Set<Path> paths = new LinkedHashSet<>();
    for (Element s : all(dom, "source")) {
      for (String attr : List.of("file", "dir", "path")) {
        addPath(paths, s.getAttribute(attr));
      }
    }
    for (Element log : all(dom, "log")) {
      addPath(paths, log.getAttribute("file"));
    }
    for (String tag : List.of("kernel", "initrd", "loader", "nvram")) {
      for (Element e : all(dom, tag)) {
        addPath(paths, e.getTextContent().trim());
      }
    }
    return new ArrayList<>(paths);
  }

  private static void addPath(Set<Path> paths, String value) {
    Path p = pathOrNull(value);
    if (p != null) {
      paths.add(p);
    }
  }

  private static @Nullable Path pathOrNull(String value) {
    if (value.isEmpty()) {
      return null;
    }
    try {
      return Path.of(value);
    } catch (InvalidPathException e) {
      return null;
    }
  }

  /** The values of attribute {@code attr} of every {@code <child>} of every {@code <parent>}. */
  private static List<String> attributes(Element dom, String parent, String child, String attr) {
    Set<String> out = new LinkedHashSet<>();
    for (Element p : all(dom, parent)) {
      for (Element c : all(p, child)) {
        if (!c.getAttribute(attr).isEmpty()) {
          out.add(c.getAttribute(attr));
        }
      }
    }
    return new ArrayList<>(out);
  }

  /**
   * SHA-256 of the definition without agent-vm's metadata (the owner and runtime directory are not
   * configuration). Removes the metadata from {@code d}.
   */
  private static String fingerprint(Document d) {
    Element meta;
    while ((meta = metadata(d)) != null) {
      Node parent = meta.getParentNode();
      if (parent == null) {
        break;
      }
      parent.removeChild(meta);
    }
    String canonical = SecureXml.serialise(d, false);
    return Hashing.sha256Hex(canonical.getBytes(StandardCharsets.UTF_8));
  }

  /** A storage pool's directory on its host ({@code <target><path>}). */
  static String poolPath(String poolXml) {
    Element target = first(parse(poolXml).getDocumentElement(), "target");
    String path = first(target, "path").getTextContent().strip();
    if (!path.startsWith("/")) {
      throw new IllegalArgumentException("pool path is not absolute: " + path);
    }
    return path;
  }

  /** The file a domain's console is logged to, if it has one. */
  static java.util.Optional<String> consoleLogFile(String xml) {
    return all(parse(xml).getDocumentElement(), "log").stream()
        .map(e -> e.getAttribute("file"))
        .filter(f -> !f.isEmpty())
        .findFirst();
  }

  /** agent-vm's {@code <agentvm:vm>} metadata element, or null. */
  static @Nullable Element metadata(Document d) {
    return (Element) d.getElementsByTagNameNS(VMTemplate.METADATA_NS, "vm").item(0);
  }

  /**
   * Parses libvirt XML (no DOCTYPE allowed, nothing fetched).
   *
   * @throws IllegalArgumentException if it is not well-formed or declares a DOCTYPE
   */
  static Document parse(String xml) {
    return SecureXml.parse(xml);
  }

  /** The first descendant {@code <tag>}, which must exist. */
  static Element first(Element parent, String tag) {
    Element e = (Element) parent.getElementsByTagName(tag).item(0);
    if (e == null) {
      throw new IllegalArgumentException("no <" + tag + "> in <" + parent.getTagName() + ">");
    }
    return e;
  }

  /** Every descendant {@code <tag>}, as a list that does not change when the document does. */
  static List<Element> all(Element parent, String tag) {
    NodeList l = parent.getElementsByTagName(tag);
    List<Element> out = new ArrayList<>(l.getLength());
    for (int i = 0; i < l.getLength(); i++) {
      out.add((Element) l.item(i));
    }
    return out;
  }

  /** Every descendant {@code <tag>} in namespace {@code ns}, as a list of its own. */
  static List<Element> allNs(Element parent, String ns, String tag) {
    NodeList l = parent.getElementsByTagNameNS(ns, tag);
    List<Element> out = new ArrayList<>(l.getLength());
    for (int i = 0; i < l.getLength(); i++) {
      out.add((Element) l.item(i));
    }
    return out;
  }

  private static String textOf(Element parent, String tag) {
    return SecureXml.textOf(parent, tag);
  }
}
