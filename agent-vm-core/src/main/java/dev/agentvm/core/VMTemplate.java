package dev.agentvm.core;

import dev.agentvm.protocol.Protocol;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Objects;
import java.util.UUID;
import java.util.function.Consumer;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import javax.xml.transform.OutputKeys;
import javax.xml.transform.TransformerException;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
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
  private final String owner;
  private final Consumer<Document> customizer;

  private VMTemplate(Builder b) {
    this.name = b.name;
    this.uuid = b.uuid != null ? b.uuid : UUID.randomUUID();
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
    Builder b = new Builder(name);
    b.uuid = uuid;
    b.resources = resources;
    b.boot = boot;
    b.virtType = virtType;
    b.runDir = runDir;
    b.owner = owner;
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
      Document d = DocumentBuilderFactory.newInstance().newDocumentBuilder().newDocument();
      Element dom = d.createElement("domain");
      d.appendChild(dom);
      dom.setAttribute("type", resolvedType.libvirtName());
      text(d, dom, "name", name);
      text(d, dom, "uuid", uuid.toString());
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
      text(d, os, "cmdline", boot.cmdline());
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
      Element rng = child(d, devices, "rng");
      rng.setAttribute("model", "virtio");
      text(d, rng, "backend", "/dev/urandom").setAttribute("model", "random");
      child(d, devices, "memballoon").setAttribute("model", "none");
      if (customizer != null) {
        customizer.accept(d);
      }
      StringWriter w = new StringWriter();
      var t = TransformerFactory.newInstance().newTransformer();
      t.setOutputProperty(OutputKeys.OMIT_XML_DECLARATION, "yes");
      t.setOutputProperty(OutputKeys.INDENT, "yes");
      t.transform(new DOMSource(d), new StreamResult(w));
      return w.toString();
    } catch (ParserConfigurationException | TransformerException e) {
      throw new IllegalStateException("JDK XML support is broken", e);
    }
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
    private UUID uuid;
    private ResourceProfile resources = ResourceProfile.LIGHT;
    private BootSource boot;
    private VirtType virtType = VirtType.AUTO;
    private Path runDir;
    private String owner;
    private Consumer<Document> customizer;

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
