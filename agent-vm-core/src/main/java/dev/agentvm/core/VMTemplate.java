package dev.agentvm.core;

import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.SecureXml;
import dev.agentvm.protocol.Protocol;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.UUID;
import java.util.function.Consumer;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerException;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.jspecify.annotations.Nullable;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

/**
 * A VM description that becomes libvirt domain XML. Immutable; make one with {@link
 * #builder(String)}.
 *
 * <pre>{@code
 * VMTemplate t = VMTemplate.builder("agentvm-demo")
 *     .resources(ResourceProfile.LIGHT)
 *     .boot(new BootSource(kernel, initrd, "console=ttyS0"))
 *     .build();
 * }</pre>
 *
 * <p>The XML is built as a DOM, so every value is escaped. {@link Builder#customizer} is an escape
 * hatch that sees the document before it is serialised, for options this class does not model.
 */
public final class VMTemplate {
  /** Namespace of agent-vm's {@code <metadata>} element in domain XML. */
  public static final String METADATA_NS = "https://agentvm.dev/xmlns/domain/1";

  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");

  private final String name;
  private final UUID uuid;
  private final ResourceProfile resources;
  private final BootSource boot;
  private final VirtType virtType;
  private final Path runDir;
  private final @Nullable String owner;
  private final UUID genid;
  private final List<DiskAttachment> disks;
  private final List<ShareAttachment> shares;
  private final List<NetworkAttachment> nics;
  private final @Nullable Consumer<Document> customizer;

  private VMTemplate(Builder b) {
    this.name = b.name;
    this.uuid = b.uuid != null ? b.uuid : UUID.randomUUID();
    this.genid = b.genid != null ? b.genid : UUID.randomUUID();
    this.disks = List.copyOf(b.disks);
    this.shares = List.copyOf(b.shares);
    this.nics = List.copyOf(b.nics);
    this.resources = b.resources;
    this.boot = Objects.requireNonNull(b.boot, "boot source is required");
    this.virtType = b.virtType;
    this.runDir = b.runDir != null ? b.runDir : AgentVmPaths.runDir(b.name);
    this.owner = b.owner;
    this.customizer = b.customizer;
  }

  public static Builder builder(String name) {
    return new Builder(name);
  }

  public Builder newBuilder() {
    Builder b = copyAs(name);
    b.uuid = uuid;
    b.genid = genid;
    b.runDir = runDir;
    b.owner = owner;
    b.disks.addAll(disks);
    b.shares.addAll(shares);
    b.nics.addAll(nics);
    return b;
  }

  /**
   * A builder for another VM like this one: same resources, boot source, virt type and customizer;
   * its own name, UUID, generation id and runtime directory; no disks, shares or NICs (they belong
   * to one VM and must be attached anew).
   */
  public Builder copyAs(String newName) {
    Builder b = new Builder(newName);
    b.resources = resources;
    b.boot = boot;
    b.virtType = virtType;
    b.customizer = customizer;
    return b;
  }

  public String name() {
    return name;
  }

  public UUID uuid() {
    return uuid;
  }

  public ResourceProfile resources() {
    return resources;
  }

  public BootSource boot() {
    return boot;
  }

  public VirtType virtType() {
    return virtType;
  }

  /**
   * The VM generation id the guest sees (libvirt {@code <genid>}): a new value tells the guest's
   * kernel it runs from a copy, and it reseeds its random number generator.
   */
  public UUID genid() {
    return genid;
  }

  public List<DiskAttachment> disks() {
    return disks;
  }

  public List<ShareAttachment> shares() {
    return shares;
  }

  /** NICs, in order; none means the VM has no network at all. */
  public List<NetworkAttachment> nics() {
    return nics;
  }

  /** Directory for this VM's runtime files. */
  public Path runDir() {
    return runDir;
  }

  /** The host end of the agent's virtio-serial channel (a UNIX socket QEMU listens on). */
  public Path agentSocket() {
    return runDir.resolve("agent.sock");
  }

  /** The guest's serial console, written by the hypervisor. */
  public Path consoleLog() {
    return runDir.resolve("console.log");
  }

  /**
   * Domain XML for this template.
   *
   * @param resolvedType the virt type to write; {@link VirtType#AUTO} must have been resolved
   */
  public String toDomainXml(VirtType resolvedType) {
    try {
      Document d = SecureXml.parserFactory().newDocumentBuilder().newDocument();
      Element dom = d.createElement("domain");
      d.appendChild(dom);
      dom.setAttribute("type", resolvedType.libvirtName());
      text(d, dom, "name", name);
      text(d, dom, "uuid", uuid.toString());
      text(d, dom, "genid", genid.toString());
      Element meta = child(d, dom, "metadata");
      Element vm = d.createElementNS(METADATA_NS, "agentvm:vm");
      vm.setAttribute("owner", owner == null ? "" : owner);
      vm.setAttribute("runDir", runDir.toString());
      meta.appendChild(vm);
      text(d, dom, "memory", Integer.toString(resources.memoryMiB())).setAttribute("unit", "MiB");
      text(d, dom, "vcpu", Integer.toString(resources.vcpus()));
      Element os = child(d, dom, "os");
      Element type = text(d, os, "type", "hvm");
      type.setAttribute("arch", "x86_64");
      type.setAttribute("machine", "pc");
      text(d, os, "kernel", boot.kernel().toString());
      text(d, os, "initrd", boot.initrd().toString());
      StringBuilder cmdline = new StringBuilder(boot.cmdline());
      for (DiskAttachment disk : disks) {
        if (!disk.guestMountPoint().isEmpty()) {
          // read by the micro image's /init
          cmdline.append(" agentvm.mount=").append(disk.target()).append(':');
          cmdline.append(disk.guestMountPoint()).append(disk.readOnly() ? ":ro" : "");
        }
      }
      text(d, os, "cmdline", cmdline.toString().trim());
      Element features = child(d, dom, "features");
      child(d, features, "acpi"); // without ACPI a guest can halt but not power off
      child(d, features, "apic");
      child(d, dom, "clock").setAttribute("offset", "utc");
      text(d, dom, "on_poweroff", "destroy");
      text(d, dom, "on_reboot", "destroy");
      text(d, dom, "on_crash", "destroy");
      Element devices = child(d, dom, "devices");
      // A pty, so that libvirt can stream it (virDomainOpenConsole, also over remote URIs), and a
      // log file that keeps everything the guest printed.
      Element serial = child(d, devices, "serial");
      serial.setAttribute("type", "pty");
      Element log = child(d, serial, "log");
      log.setAttribute("file", consoleLog().toString());
      log.setAttribute("append", "off");
      child(d, serial, "target").setAttribute("port", "0");
      Element channel = child(d, devices, "channel");
      channel.setAttribute("type", "unix");
      Element src = child(d, channel, "source");
      src.setAttribute("mode", "bind");
      src.setAttribute("path", agentSocket().toString());
      Element target = child(d, channel, "target");
      target.setAttribute("type", "virtio");
      target.setAttribute("name", Protocol.VIRTIO_SERIAL_PORT_NAME);
      for (DiskAttachment disk : disks) {
        Element e = child(d, devices, "disk");
        e.setAttribute("type", "file");
        e.setAttribute("device", "disk");
        Element driver = child(d, e, "driver");
        driver.setAttribute("name", "qemu");
        driver.setAttribute("type", disk.format().driverType());
        child(d, e, "source").setAttribute("file", disk.file().toString());
        Element diskTarget = child(d, e, "target");
        diskTarget.setAttribute("dev", disk.target());
        diskTarget.setAttribute("bus", "virtio");
        if (disk.readOnly()) {
          child(d, e, "readonly");
        }
      }
      for (ShareAttachment share : shares) {
        Element e = child(d, devices, "filesystem");
        e.setAttribute("type", "mount");
        e.setAttribute("accessmode", "mapped");
        // without these, files the guest creates are 0600 on the host: unreadable to other users
        e.setAttribute("fmode", "0644");
        e.setAttribute("dmode", "0755");
        child(d, e, "source").setAttribute("dir", share.hostDir().toString());
        child(d, e, "target").setAttribute("dir", share.tag());
        if (share.readOnly()) {
          child(d, e, "readonly");
        }
      }
      for (NetworkAttachment nic : nics) {
        Element e = child(d, devices, "interface");
        boolean net = nic.kind() == NetworkAttachment.Kind.NETWORK;
        e.setAttribute("type", net ? "network" : "bridge");
        child(d, e, "source").setAttribute(net ? "network" : "bridge", nic.source());
        child(d, e, "mac").setAttribute("address", nic.mac());
        child(d, e, "model").setAttribute("type", "virtio");
        if (!nic.filter().isEmpty()) {
          Element f = child(d, e, "filterref");
          f.setAttribute("filter", nic.filter());
          for (var p : new java.util.TreeMap<>(nic.filterParameters()).entrySet()) {
            Element param = child(d, f, "parameter");
            param.setAttribute("name", p.getKey());
            param.setAttribute("value", p.getValue());
          }
        }
      }
      Element rng = child(d, devices, "rng");
      rng.setAttribute("model", "virtio");
      text(d, rng, "backend", "/dev/urandom").setAttribute("model", "random");
      child(d, devices, "memballoon").setAttribute("model", "none");
      if (customizer != null) {
        customizer.accept(d);
      }
      StringWriter w = new StringWriter();
      Transformer t = SecureXml.transformer();
      t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
      t.setOutputProperty(OutputKeys.INDENT, "yes");
      t.transform(new DOMSource(d), new StreamResult(w));
      return w.toString();
    } catch (ParserConfigurationException | TransformerException e) {
      throw new IllegalStateException("JDK XML support is broken", e);
    }
  }

  /**
   * Reads back a template from domain XML this class generated (the customizer's changes are not
   * recovered; the virt type is the one the XML names).
   *
   * @throws IllegalArgumentException if the XML is not a domain agent-vm defined
   */
  static VMTemplate fromDomainXml(String xml) {
    try {
      DocumentBuilderFactory f = SecureXml.parserFactory();
      Document d =
          f.newDocumentBuilder().parse(new org.xml.sax.InputSource(new java.io.StringReader(xml)));
      Element dom = d.getDocumentElement();
      Element meta = (Element) d.getElementsByTagNameNS(METADATA_NS, "vm").item(0);
      if (meta == null) {
        throw new IllegalArgumentException("domain has no agent-vm metadata");
      }
      Builder b = builder(textOf(dom, "name"));
      b.uuid(UUID.fromString(textOf(dom, "uuid")));
      if (!textOf(dom, "genid").isEmpty()) {
        b.genid(UUID.fromString(textOf(dom, "genid")));
      }
      b.runDir(Path.of(meta.getAttribute("runDir")));
      b.owner(meta.getAttribute("owner"));
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
      b.resources(new ResourceProfile(Integer.parseInt(textOf(dom, "vcpu")), (int) mib));
      Element os = first(dom, "os");
      String cmdline = textOf(os, "cmdline").replaceAll("\\s*agentvm\\.mount=\\S*", "").trim();
      b.boot(new BootSource(Path.of(textOf(os, "kernel")), Path.of(textOf(os, "initrd")), cmdline));
      b.virtType("kvm".equals(dom.getAttribute("type")) ? VirtType.KVM : VirtType.QEMU);
      java.util.Map<String, String> mounts = new java.util.HashMap<>();
      // limit -1 keeps trailing empty strings; the text is trimmed and a missing or empty second
      // part reads as "" either way, so the results are the ones split(regex) gave
      for (String arg : textOf(os, "cmdline").split("\\s+", -1)) {
        if (arg.startsWith("agentvm.mount=")) {
          String[] p = arg.substring("agentvm.mount=".length()).split(":", -1);
          mounts.put(p[0], p.length > 1 ? p[1] : "");
        }
      }
      org.w3c.dom.NodeList disks = dom.getElementsByTagName("disk");
      for (int i = 0; i < disks.getLength(); i++) {
        Element e = (Element) disks.item(i);
        String target = first(e, "target").getAttribute("dev");
        b.disk(
            new DiskAttachment(
                Path.of(first(e, "source").getAttribute("file")),
                "raw".equals(first(e, "driver").getAttribute("type"))
                    ? DiskAttachment.Format.RAW
                    : DiskAttachment.Format.QCOW2,
                target,
                e.getElementsByTagName("readonly").getLength() > 0,
                mounts.getOrDefault(target, "")));
      }
      org.w3c.dom.NodeList fss = dom.getElementsByTagName("filesystem");
      for (int i = 0; i < fss.getLength(); i++) {
        Element e = (Element) fss.item(i);
        b.share(
            new ShareAttachment(
                Path.of(first(e, "source").getAttribute("dir")),
                first(e, "target").getAttribute("dir"),
                e.getElementsByTagName("readonly").getLength() > 0));
      }
      org.w3c.dom.NodeList ifs = dom.getElementsByTagName("interface");
      for (int i = 0; i < ifs.getLength(); i++) {
        Element e = (Element) ifs.item(i);
        boolean net = "network".equals(e.getAttribute("type"));
        Element src = first(e, "source");
        java.util.Map<String, String> params = new java.util.HashMap<>();
        String filter = "";
        org.w3c.dom.NodeList frs = e.getElementsByTagName("filterref");
        if (frs.getLength() > 0) {
          Element fr = (Element) frs.item(0);
          filter = fr.getAttribute("filter");
          org.w3c.dom.NodeList ps = fr.getElementsByTagName("parameter");
          for (int j = 0; j < ps.getLength(); j++) {
            Element p = (Element) ps.item(j);
            params.put(p.getAttribute("name"), p.getAttribute("value"));
          }
        }
        b.nic(
            new NetworkAttachment(
                net ? NetworkAttachment.Kind.NETWORK : NetworkAttachment.Kind.BRIDGE,
                src.getAttribute(net ? "network" : "bridge"),
                first(e, "mac").getAttribute("address"),
                filter,
                params));
      }
      return b.build();
    } catch (ParserConfigurationException | org.xml.sax.SAXException | java.io.IOException e) {
      throw new IllegalArgumentException("unreadable domain XML: " + e.getMessage(), e);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("domain XML not made by agent-vm: " + e, e);
    }
  }

  /**
   * Puts this template's identity onto the definition of a saved VM (from a memory image): name,
   * UUID, generation id, owner metadata, console log, agent socket, disk files by target device and
   * share directories by tag. Everything else, the virtual hardware above all, stays as saved, so
   * the guest's saved state fits it.
   *
   * @throws IllegalArgumentException if the saved VM has a disk or share this template lacks, or
   *     the XML was not made by agent-vm
   */
  String retarget(String savedXml) {
    try {
      DocumentBuilderFactory f = SecureXml.parserFactory();
      Document d =
          f.newDocumentBuilder()
              .parse(new org.xml.sax.InputSource(new java.io.StringReader(savedXml)));
      Element dom = d.getDocumentElement();
      dom.removeAttribute("id");
      first(dom, "name").setTextContent(name);
      first(dom, "uuid").setTextContent(uuid.toString());
      org.w3c.dom.NodeList genids = dom.getElementsByTagName("genid");
      if (genids.getLength() > 0) {
        genids.item(0).setTextContent(genid.toString());
      }
      Element meta = (Element) d.getElementsByTagNameNS(METADATA_NS, "vm").item(0);
      if (meta == null) {
        throw new IllegalArgumentException("saved domain has no agent-vm metadata");
      }
      meta.setAttribute("owner", owner == null ? "" : owner);
      meta.setAttribute("runDir", runDir.toString());
      org.w3c.dom.NodeList logs = first(dom, "devices").getElementsByTagName("log");
      for (int i = 0; i < logs.getLength(); i++) {
        ((Element) logs.item(i)).setAttribute("file", consoleLog().toString());
      }
      org.w3c.dom.NodeList channels = dom.getElementsByTagName("channel");
      for (int i = 0; i < channels.getLength(); i++) {
        Element c = (Element) channels.item(i);
        if (Protocol.VIRTIO_SERIAL_PORT_NAME.equals(first(c, "target").getAttribute("name"))) {
          first(c, "source").setAttribute("path", agentSocket().toString());
        }
      }
      org.w3c.dom.NodeList diskEls = dom.getElementsByTagName("disk");
      for (int i = 0; i < diskEls.getLength(); i++) {
        Element e = (Element) diskEls.item(i);
        String dev = first(e, "target").getAttribute("dev");
        DiskAttachment mine =
            disks.stream()
                .filter(x -> x.target().equals(dev))
                .findFirst()
                .orElseThrow(
                    () ->
                        new IllegalArgumentException(
                            "the saved VM has disk " + dev + "; give one"));
        first(e, "source").setAttribute("file", mine.file().toString());
        // the saved chain (the template's disk) is now the new overlay's backing file
        org.w3c.dom.NodeList backing = e.getElementsByTagName("backingStore");
        for (int j = backing.getLength() - 1; j >= 0; j--) {
          backing.item(j).getParentNode().removeChild(backing.item(j));
        }
      }
      org.w3c.dom.NodeList ifs = dom.getElementsByTagName("interface");
      if (ifs.getLength() != nics.size()) {
        throw new IllegalArgumentException(
            "the saved VM has " + ifs.getLength() + " NICs, this template " + nics.size());
      }
      for (int i = 0; i < ifs.getLength(); i++) {
        // a clone needs its own MAC (and its own address); the hardware model stays
        Element e = (Element) ifs.item(i);
        first(e, "mac").setAttribute("address", nics.get(i).mac());
        org.w3c.dom.NodeList frs = e.getElementsByTagName("filterref");
        for (int j = 0; j < frs.getLength(); j++) {
          Element fr = (Element) frs.item(j);
          org.w3c.dom.NodeList ps = fr.getElementsByTagName("parameter");
          for (int k = 0; k < ps.getLength(); k++) {
            Element p = (Element) ps.item(k);
            String v = nics.get(i).filterParameters().get(p.getAttribute("name"));
            if (v != null) {
              p.setAttribute("value", v);
            }
          }
        }
      }
      org.w3c.dom.NodeList fss = dom.getElementsByTagName("filesystem");
      for (int i = 0; i < fss.getLength(); i++) {
        Element e = (Element) fss.item(i);
        String tag = first(e, "target").getAttribute("dir");
        ShareAttachment mine =
            shares.stream()
                .filter(x -> x.tag().equals(tag))
                .findFirst()
                .orElseThrow(
                    () ->
                        new IllegalArgumentException(
                            "the saved VM has share " + tag + "; give one"));
        first(e, "source").setAttribute("dir", mine.hostDir().toString());
      }
      StringWriter w = new StringWriter();
      Transformer t = SecureXml.transformer();
      t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
      t.transform(new DOMSource(d), new StreamResult(w));
      return w.toString();
    } catch (ParserConfigurationException
        | org.xml.sax.SAXException
        | java.io.IOException
        | TransformerException e) {
      throw new IllegalArgumentException("unreadable saved domain XML: " + e.getMessage(), e);
    }
  }

  private static Element first(Element parent, String tag) {
    Element e = (Element) parent.getElementsByTagName(tag).item(0);
    if (e == null) {
      throw new IllegalArgumentException("no <" + tag + "> in <" + parent.getTagName() + ">");
    }
    return e;
  }

  private static String textOf(Element parent, String tag) {
    org.w3c.dom.NodeList l = parent.getElementsByTagName(tag);
    return l.getLength() == 0 ? "" : l.item(0).getTextContent().trim();
  }

  private static Element child(Document d, Element parent, String name) {
    Element e = d.createElement(name);
    parent.appendChild(e);
    return e;
  }

  private static Element text(Document d, Element parent, String name, String value) {
    Element e = child(d, parent, name);
    e.setTextContent(value);
    return e;
  }

  /** Builds {@link VMTemplate}s. Every setter validates its argument. */
  public static final class Builder {
    private final String name;
    private @Nullable UUID uuid;
    private ResourceProfile resources = ResourceProfile.LIGHT;
    private @Nullable BootSource boot;
    private VirtType virtType = VirtType.AUTO;
    private @Nullable Path runDir;
    private @Nullable String owner;
    private @Nullable UUID genid;
    private final List<DiskAttachment> disks = new ArrayList<>();
    private final List<ShareAttachment> shares = new ArrayList<>();
    private final List<NetworkAttachment> nics = new ArrayList<>();
    private @Nullable Consumer<Document> customizer;

    private Builder(String name) {
      if (name == null || !NAME.matcher(name).matches()) {
        throw new IllegalArgumentException(
            "name must be 1-64 characters of letters, digits, '_', '.', '-' starting with a letter or digit, was '"
                + name
                + "'");
      }
      this.name = name;
    }

    public Builder uuid(UUID uuid) {
      this.uuid = Objects.requireNonNull(uuid, "uuid");
      return this;
    }

    public Builder resources(ResourceProfile resources) {
      this.resources = Objects.requireNonNull(resources, "resources");
      return this;
    }

    public Builder boot(BootSource boot) {
      this.boot = Objects.requireNonNull(boot, "boot");
      return this;
    }

    /** The virt type; {@link VirtType#AUTO} by default. */
    public Builder virtType(VirtType virtType) {
      this.virtType = Objects.requireNonNull(virtType, "virtType");
      return this;
    }

    /** Overrides the runtime directory (default {@link AgentVmPaths#runDir(String)}). */
    public Builder runDir(Path runDir) {
      this.runDir = runDir.toAbsolutePath();
      return this;
    }

    /** Owner id recorded in the domain metadata, so that leftovers can be traced and reaped. */
    public Builder owner(String owner) {
      this.owner = owner;
      return this;
    }

    /** The VM generation id (default: a random one per template). */
    public Builder genid(UUID genid) {
      this.genid = Objects.requireNonNull(genid, "genid");
      return this;
    }

    /**
     * Attaches a disk.
     *
     * @throws IllegalArgumentException if another disk already uses its target device
     */
    public Builder disk(DiskAttachment disk) {
      Objects.requireNonNull(disk, "disk");
      for (DiskAttachment d : disks) {
        if (d.target().equals(disk.target())) {
          throw new IllegalArgumentException("disk target " + disk.target() + " is used twice");
        }
      }
      disks.add(disk);
      return this;
    }

    /**
     * Offers a host directory to the guest as a virtio-9p share.
     *
     * @throws IllegalArgumentException if another share already uses its tag
     */
    public Builder share(ShareAttachment share) {
      Objects.requireNonNull(share, "share");
      Set<String> tags = new HashSet<>();
      shares.forEach(s -> tags.add(s.tag()));
      if (!tags.add(share.tag())) {
        throw new IllegalArgumentException("share tag " + share.tag() + " is used twice");
      }
      shares.add(share);
      return this;
    }

    /**
     * Adds a NIC. Without one the VM has no network at all (the default, and the safest).
     *
     * @throws IllegalArgumentException if another NIC already has its MAC
     */
    public Builder nic(NetworkAttachment nic) {
      Objects.requireNonNull(nic, "nic");
      for (NetworkAttachment n : nics) {
        if (n.mac().equals(nic.mac())) {
          throw new IllegalArgumentException("MAC " + nic.mac() + " is used twice");
        }
      }
      nics.add(nic);
      return this;
    }

    /** Sees (and may change) the domain document before it is serialised. */
    public Builder customizer(Consumer<Document> customizer) {
      this.customizer = customizer;
      return this;
    }

    public VMTemplate build() {
      return new VMTemplate(this);
    }
  }
}
