package dev.agentvm.core.internal.libvirt;

import static dev.agentvm.internal.SecureXml.child;
import static dev.agentvm.internal.SecureXml.text;

import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.NetworkAttachment;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import dev.agentvm.internal.SecureXml;
import dev.agentvm.internal.Setting;
import dev.agentvm.protocol.Protocol;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.function.Function;
import org.jspecify.annotations.Nullable;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/**
 * Writes libvirt domain XML: the definition of a {@link VMTemplate}, and a saved VM's definition
 * put under a clone's identity ({@link #retarget}). Built as a DOM, so every value is escaped. The
 * one place agent-vm writes domain XML; {@link DomainXmlReader} is the one place it reads it.
 */
public final class DomainXmlWriter {
  private DomainXmlWriter() {}

  /**
   * Domain XML for {@code t}.
   *
   * @param resolvedType the virt type to write; {@link VirtType#AUTO} must have been resolved
   * @param customizer sees the document before it is serialised (the template's escape hatch)
   * @throws IllegalStateException if {@code resolvedType} is AUTO
   */
  public static String write(
      VMTemplate t, VirtType resolvedType, @Nullable Consumer<Document> customizer) {
    Document d = SecureXml.newDocument();
    Element dom = d.createElement("domain");
    d.appendChild(dom);
    dom.setAttribute("type", resolvedType.libvirtName());
    text(d, dom, "name", t.name());
    text(d, dom, "uuid", t.uuid().toString());
    text(d, dom, "genid", t.genid().toString());
    Element meta = child(d, dom, "metadata");
    Element vm = d.createElementNS(VMTemplate.METADATA_NS, "agentvm:vm");
    vm.setAttribute("owner", t.owner().orElse(""));
    vm.setAttribute("runDir", t.runDir().toString());
    ResourceProfile r = t.resources();
    vm.setAttribute("diskBytesPerSecond", Long.toString(r.diskBytesPerSecond()));
    vm.setAttribute("diskIopsPerSecond", Integer.toString(r.diskIopsPerSecond()));
    meta.appendChild(vm);
    text(d, dom, "memory", Integer.toString(r.memoryMiB())).setAttribute("unit", "MiB");
    writeLimits(d, dom, r, resolvedType);
    text(d, dom, "vcpu", Integer.toString(r.vcpus()));
    writeOs(d, dom, t);
    Element features = child(d, dom, "features");
    child(d, features, "acpi"); // without ACPI a guest can halt but not power off
    child(d, features, "apic");
    child(d, dom, "clock").setAttribute("offset", "utc");
    text(d, dom, "on_poweroff", "destroy");
    text(d, dom, "on_reboot", "destroy");
    text(d, dom, "on_crash", "destroy");
    Element devices = child(d, dom, "devices");
    // no USB: libvirt would add a controller for the pc machine; the guest needs none of it
    Element usb = child(d, devices, "controller");
    usb.setAttribute("type", "usb");
    usb.setAttribute("model", "none");
    writeConsoleAndChannel(d, devices, t);
    t.disks().forEach(disk -> writeDisk(d, devices, disk, r));
    t.shares().forEach(share -> writeShare(d, devices, share));
    t.nics().forEach(nic -> writeNic(d, devices, nic));
    Element rng = child(d, devices, "rng");
    rng.setAttribute("model", "virtio");
    text(d, rng, "backend", "/dev/urandom").setAttribute("model", "random");
    child(d, devices, "memballoon").setAttribute("model", "none");
    fastCpuCheck(d, dom);
    if (customizer != null) {
      customizer.accept(d);
    }
    return SecureXml.serialise(d, true);
  }

  /** libvirt's namespace for QEMU-specific domain settings. */
  static final String QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0";

  /** The libvirt capability whose absence makes libvirt check the guest CPU in two queries. */
  static final String CPU_CHECK_CAPABILITY = "cpu-unavailable-features";

  /**
   * Asks libvirt to check the guest's CPU with two monitor queries ({@code feature-words}, {@code
   * filtered-features}) instead of one per CPU property: with QEMU 7.2 that is ~400 round trips,
   * half of a restore's time under TCG. The same features are checked; QEMU's command line, its
   * seccomp sandbox and its confinement do not change. libvirt marks such domains as using a custom
   * hypervisor feature. Idempotent; with {@link Setting#FAST_CPU_CHECK} {@code off} it is left out,
   * and taken out of a saved definition that has it.
   */
  static void fastCpuCheck(Document d, Element dom) {
    boolean want = !Setting.FAST_CPU_CHECK.isOff();
    boolean have = false;
    for (Element caps : childrenNs(dom, "capabilities")) {
      boolean removed = false;
      for (Element del : childrenNs(caps, "del")) {
        if (CPU_CHECK_CAPABILITY.equals(del.getAttribute("capability"))) {
          if (want && !have) {
            have = true;
          } else { // off (an image saved with it), or a second one
            caps.removeChild(del);
            removed = true;
          }
        }
      }
      if (removed && caps.getElementsByTagNameNS("*", "*").getLength() == 0) {
        dom.removeChild(caps);
      }
    }
    if (!want || have) {
      return;
    }
    String prefix = dom.lookupPrefix(QEMU_NS);
    if (prefix == null) {
      // "qemu" may be bound to another namespace in a customised definition
      prefix = dom.lookupNamespaceURI("qemu") == null ? "qemu" : "agentvmqemu";
      dom.setAttributeNS("http://www.w3.org/2000/xmlns/", "xmlns:" + prefix, QEMU_NS);
    }
    Element caps = d.createElementNS(QEMU_NS, prefix + ":capabilities");
    Element del = d.createElementNS(QEMU_NS, prefix + ":del");
    del.setAttribute("capability", CPU_CHECK_CAPABILITY);
    caps.appendChild(del);
    dom.appendChild(caps);
  }

  /** The child elements of {@code parent} named {@code tag} in libvirt's QEMU namespace. */
  private static List<Element> childrenNs(Element parent, String tag) {
    List<Element> out = new java.util.ArrayList<>();
    for (org.w3c.dom.Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
      if (n instanceof Element e && QEMU_NS.equals(e.getNamespaceURI())) {
        if (tag.equals(e.getLocalName())) {
          out.add(e);
        }
      }
    }
    return out;
  }

  /** The kernel command-line argument that asks the micro image's /init to mount a disk. */
  static final String MOUNT_ARG = "agentvm.mount=";

  private static void writeOs(Document d, Element dom, VMTemplate t) {
    Element os = child(d, dom, "os");
    Element type = text(d, os, "type", "hvm");
    type.setAttribute("arch", "x86_64");
    type.setAttribute("machine", "pc");
    text(d, os, "kernel", t.boot().kernel().toString());
    text(d, os, "initrd", t.boot().initrd().toString());
    StringBuilder cmdline = new StringBuilder(t.boot().cmdline());
    for (DiskAttachment disk : t.disks()) {
      if (!disk.guestMountPoint().isEmpty()) {
        cmdline.append(' ').append(MOUNT_ARG).append(disk.target()).append(':');
        cmdline.append(disk.guestMountPoint()).append(disk.readOnly() ? ":ro" : "");
      }
    }
    text(d, os, "cmdline", cmdline.toString().trim());
  }

  /**
   * A pty console, so that libvirt can stream it (virDomainOpenConsole, also over remote URIs),
   * with a log file that keeps everything the guest printed; and the agent's virtio-serial channel.
   */
  private static void writeConsoleAndChannel(Document d, Element devices, VMTemplate t) {
    Element serial = child(d, devices, "serial");
    serial.setAttribute("type", "pty");
    Element log = child(d, serial, "log");
    log.setAttribute("file", t.consoleLog().toString());
    log.setAttribute("append", "off");
    child(d, serial, "target").setAttribute("port", "0");
    Element channel = child(d, devices, "channel");
    channel.setAttribute("type", "unix");
    Element src = child(d, channel, "source");
    src.setAttribute("mode", "bind");
    src.setAttribute("path", t.agentSocket().toString());
    Element target = child(d, channel, "target");
    target.setAttribute("type", "virtio");
    target.setAttribute("name", Protocol.VIRTIO_SERIAL_PORT_NAME);
  }

  /**
   * The host-side limits of the QEMU process: a memory hard limit, and the whole VM's CPU time
   * (vCPUs and QEMU's own threads together) capped at its vCPU count.
   */
  private static void writeLimits(Document d, Element dom, ResourceProfile r, VirtType type) {
    Element memtune = child(d, dom, "memtune");
    text(d, memtune, "hard_limit", Long.toString(r.memoryHardLimitMiB(type)))
        .setAttribute("unit", "MiB");
    Element cputune = child(d, dom, "cputune");
    text(d, cputune, "global_period", Long.toString(CPU_PERIOD_MICROS));
    text(d, cputune, "global_quota", Long.toString(CPU_PERIOD_MICROS * r.vcpus()));
  }

  /** {@code xml} without its {@code <memtune>}: for hosts that cannot apply it. */
  public static String withoutMemoryHardLimit(String xml) {
    Document d = SecureXml.parse(xml);
    NodeList l = d.getElementsByTagName("memtune");
    for (int i = l.getLength() - 1; i >= 0; i--) {
      org.w3c.dom.Node n = l.item(i);
      org.w3c.dom.Node parent = n.getParentNode();
      if (parent != null) {
        parent.removeChild(n);
      }
    }
    return SecureXml.serialise(d, true);
  }

  /** The CPU accounting period of {@code cputune} (libvirt's default): 100 ms. */
  static final long CPU_PERIOD_MICROS = 100_000;

  private static void writeDisk(
      Document d, Element devices, DiskAttachment disk, ResourceProfile r) {
    Element e = child(d, devices, "disk");
    e.setAttribute("type", "file");
    e.setAttribute("device", "disk");
    Element driver = child(d, e, "driver");
    driver.setAttribute("name", "qemu");
    driver.setAttribute("type", disk.format().driverType());
    child(d, e, "source").setAttribute("file", disk.file().toString());
    Element target = child(d, e, "target");
    target.setAttribute("dev", disk.target());
    target.setAttribute("bus", "virtio");
    if (disk.readOnly()) {
      child(d, e, "readonly");
    }
    if (r.diskBytesPerSecond() > 0 || r.diskIopsPerSecond() > 0) {
      Element iotune = child(d, e, "iotune");
      if (r.diskBytesPerSecond() > 0) {
        text(d, iotune, "total_bytes_sec", Long.toString(r.diskBytesPerSecond()));
      }
      if (r.diskIopsPerSecond() > 0) {
        text(d, iotune, "total_iops_sec", Integer.toString(r.diskIopsPerSecond()));
      }
    }
  }

  private static void writeShare(Document d, Element devices, ShareAttachment share) {
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

  private static void writeNic(Document d, Element devices, NetworkAttachment nic) {
    Element e = child(d, devices, "interface");
    boolean net = nic.kind() == NetworkAttachment.Kind.NETWORK;
    e.setAttribute("type", net ? "network" : "bridge");
    child(d, e, "source").setAttribute(net ? "network" : "bridge", nic.source());
    child(d, e, "mac").setAttribute("address", nic.mac());
    child(d, e, "model").setAttribute("type", "virtio");
    if (!nic.filter().isEmpty()) {
      Element f = child(d, e, "filterref");
      f.setAttribute("filter", nic.filter());
      for (Map.Entry<String, String> p : new TreeMap<>(nic.filterParameters()).entrySet()) {
        Element param = child(d, f, "parameter");
        param.setAttribute("name", p.getKey());
        param.setAttribute("value", p.getValue());
      }
    }
  }

  /**
   * Puts {@code t}'s identity onto the definition of a saved VM (from a memory image): name, UUID,
   * generation id, owner metadata, console log, agent socket, disk files by target device, share
   * directories by tag, and MACs and filter parameters of the NICs in order. Everything else, the
   * virtual hardware above all, stays as saved, so the guest's saved state fits it.
   *
   * @throws IllegalArgumentException if the saved VM has a disk or share {@code t} lacks, another
   *     number of NICs, or the XML was not made by agent-vm
   */
  public static String retarget(String savedXml, VMTemplate t) {
    Document d = DomainXmlReader.parse(savedXml);
    Element dom = d.getDocumentElement();
    dom.removeAttribute("id");
    DomainXmlReader.first(dom, "name").setTextContent(t.name());
    DomainXmlReader.first(dom, "uuid").setTextContent(t.uuid().toString());
    NodeList genids = dom.getElementsByTagName("genid");
    if (genids.getLength() > 0) {
      genids.item(0).setTextContent(t.genid().toString());
    }
    Element meta = DomainXmlReader.metadata(d);
    if (meta == null) {
      throw new IllegalArgumentException("saved domain has no agent-vm metadata");
    }
    meta.setAttribute("owner", t.owner().orElse(""));
    meta.setAttribute("runDir", t.runDir().toString());
    for (Element log : DomainXmlReader.all(DomainXmlReader.first(dom, "devices"), "log")) {
      log.setAttribute("file", t.consoleLog().toString());
    }
    for (Element c : DomainXmlReader.all(dom, "channel")) {
      if (Protocol.VIRTIO_SERIAL_PORT_NAME.equals(
          DomainXmlReader.first(c, "target").getAttribute("name"))) {
        // a remote host's VM let libvirt place its socket: its saved definition names none
        for (Element src : DomainXmlReader.all(c, "source")) {
          src.setAttribute("path", t.agentSocket().toString());
        }
      }
    }
    retargetDisks(dom, t.disks());
    retargetNics(dom, t.nics());
    fastCpuCheck(d, dom); // images saved before it was written restore as fast
    for (Element e : DomainXmlReader.all(dom, "filesystem")) {
      String tag = DomainXmlReader.first(e, "target").getAttribute("dir");
      ShareAttachment mine = theOneFor(t.shares(), ShareAttachment::tag, tag, "share");
      DomainXmlReader.first(e, "source").setAttribute("dir", mine.hostDir().toString());
    }
    return SecureXml.serialise(d, false);
  }

  private static void retargetDisks(Element dom, List<DiskAttachment> disks) {
    for (Element e : DomainXmlReader.all(dom, "disk")) {
      String dev = DomainXmlReader.first(e, "target").getAttribute("dev");
      DiskAttachment mine = theOneFor(disks, DiskAttachment::target, dev, "disk");
      DomainXmlReader.first(e, "source").setAttribute("file", mine.file().toString());
      // the saved chain (the template's disk) is now the new overlay's backing file
      for (Element backing : DomainXmlReader.all(e, "backingStore")) {
        if (backing.getParentNode() != null) {
          backing.getParentNode().removeChild(backing);
        }
      }
    }
  }

  /** The attachment whose key is {@code key}: a saved VM's device needs one in the template. */
  private static <T> T theOneFor(List<T> mine, Function<T, String> keyOf, String key, String kind) {
    return mine.stream()
        .filter(x -> keyOf.apply(x).equals(key))
        .findFirst()
        .orElseThrow(
            () ->
                new IllegalArgumentException(
                    "the saved VM has " + kind + " " + key + "; give one"));
  }

  private static void retargetNics(Element dom, List<NetworkAttachment> nics) {
    List<Element> ifs = DomainXmlReader.all(dom, "interface");
    if (ifs.size() != nics.size()) {
      throw new IllegalArgumentException(
          "the saved VM has " + ifs.size() + " NICs, this template " + nics.size());
    }
    for (int i = 0; i < ifs.size(); i++) {
      // a clone needs its own MAC (and its own address); the hardware model stays
      Element e = ifs.get(i);
      NetworkAttachment mine = nics.get(i);
      DomainXmlReader.first(e, "mac").setAttribute("address", mine.mac());
      // the template's parameters, all of them and only them: a saved IP must not outlive a
      // template without one, nor a saved way of learning one outlive the template's
      for (Element ref : DomainXmlReader.all(e, "filterref")) {
        for (Element p : DomainXmlReader.all(ref, "parameter")) {
          ref.removeChild(p);
        }
        for (Map.Entry<String, String> p : new TreeMap<>(mine.filterParameters()).entrySet()) {
          Element param = ref.getOwnerDocument().createElement("parameter");
          param.setAttribute("name", p.getKey());
          param.setAttribute("value", p.getValue());
          ref.appendChild(param);
        }
      }
    }
  }

  /** A {@code <domainsnapshot>} that asks for an internal snapshot named {@code name}. */
  static String snapshot(String name, String description) {
    Document d = SecureXml.newDocument();
    Element snap = d.createElement("domainsnapshot");
    d.appendChild(snap);
    text(d, snap, "name", name);
    text(d, snap, "description", description);
    return SecureXml.serialise(d, false);
  }

  /**
   * A domain's XML for a host that does not share this machine's files: boot images and read-only
   * disks replaced by what {@code stage} returns for them (their paths on the host), console logs
   * at {@code consoleLog(name)}, the agent socket left for libvirt to place.
   *
   * @throws HypervisorException if the VM needs what a remote host cannot have (a writable disk or
   *     a share of this machine's directories); checked before anything is staged
   */
  static String forRemoteHost(
      String xml, Function<String, String> stage, Function<String, String> consoleLog, String uri) {
    return forRemoteHost(xml, stage, consoleLog, uri, f -> false, f -> false);
  }

  /**
   * Like {@link #forRemoteHost(String, Function, Function, String)}, where files for which {@code
   * onHost} holds are the host's own (in its agent-vm pool) and stay as they are: boot images
   * already staged are not staged again, and disks for which {@code writableOnHost} holds too
   * (qcow2 overlays made on the host) may be writable, attached as qcow2 only; other pool files
   * only as raw read-only disks.
   */
  static String forRemoteHost(
      String xml,
      Function<String, String> stage,
      Function<String, String> consoleLog,
      String uri,
      java.util.function.Predicate<String> onHost,
      java.util.function.Predicate<String> writableOnHost) {
    Document d = DomainXmlReader.parse(xml);
    Element dom = d.getDocumentElement();
    String name = DomainXmlReader.first(dom, "name").getTextContent();
    Function<String, String> place = f -> onHost.test(f) ? f : stage.apply(f);
    // refusals first: nothing is uploaded for a VM that cannot be made
    for (Element disk : DomainXmlReader.all(dom, "disk")) {
      String file = DomainXmlReader.first(disk, "source").getAttribute("file");
      String format = DomainXmlReader.first(disk, "driver").getAttribute("type");
      if (onHost.test(file) && writableOnHost.test(file)) {
        if (!format.equals("qcow2")) {
          // a raw view of an overlay would hand the guest its header, and with it a backing file
          // looked up on the host the next time the file is opened as qcow2
          throw new dev.agentvm.core.HypervisorException(
              "VM "
                  + name
                  + ": the host's overlay "
                  + file
                  + " must be attached as qcow2, not "
                  + format,
              null);
        }
        continue;
      }
      if (onHost.test(file) && disk.getElementsByTagName("readonly").getLength() == 0) {
        throw new dev.agentvm.core.HypervisorException(
            "VM "
                + name
                + ": "
                + file
                + " of the host's pool may not be a writable disk (only qcow2 overlays made by"
                + " HostStorage.createOverlay, named *.qcow2, may)",
            null);
      }
      if (disk.getElementsByTagName("readonly").getLength() == 0) {
        throw new dev.agentvm.core.HypervisorException(
            "VM "
                + name
                + ": writable disk "
                + file
                + " is on this machine; libvirt at "
                + uri
                + " cannot use it (remote hosts take read-only disks and images only)",
            null);
      }
      if (!format.equals("raw")) {
        // a qcow2 image may name a backing file, which would be looked up on the host
        throw new dev.agentvm.core.HypervisorException(
            "VM "
                + name
                + ": disk "
                + file
                + " is "
                + format
                + "; libvirt at "
                + uri
                + " takes raw read-only disks only (convert it with qemu-img convert -O raw)",
            null);
      }
    }
    if (!DomainXmlReader.all(dom, "filesystem").isEmpty()) {
      throw new dev.agentvm.core.HypervisorException(
          "VM "
              + name
              + ": a shared directory of this machine cannot reach libvirt at "
              + uri
              + "; move files over the agent protocol instead",
          null);
    }
    for (String tag : new String[] {"kernel", "initrd"}) {
      for (Element e : DomainXmlReader.all(dom, tag)) {
        e.setTextContent(place.apply(e.getTextContent().strip()));
      }
    }
    for (Element disk : DomainXmlReader.all(dom, "disk")) {
      Element src = DomainXmlReader.first(disk, "source");
      src.setAttribute("file", place.apply(src.getAttribute("file")));
    }
    for (Element log : DomainXmlReader.all(DomainXmlReader.first(dom, "devices"), "log")) {
      log.setAttribute("file", consoleLog.apply(name));
    }
    for (Element c : DomainXmlReader.all(dom, "channel")) {
      if (Protocol.VIRTIO_SERIAL_PORT_NAME.equals(
          DomainXmlReader.first(c, "target").getAttribute("name"))) {
        // libvirt places the socket in its own channel directory on the host
        for (Element src : DomainXmlReader.all(c, "source")) {
          src.removeAttribute("path");
        }
      }
    }
    return SecureXml.serialise(d, true);
  }

  /**
   * A qcow2 volume's XML on the qcow2 file {@code backing}: the overlay a sandbox writes, readable
   * by the host's root only (libvirt hands it to QEMU's user while a VM uses it).
   */
  static String qcow2Overlay(String name, long capacity, String backing) {
    Document d = SecureXml.newDocument();
    Element vol = d.createElement("volume");
    d.appendChild(vol);
    text(d, vol, "name", name);
    text(d, vol, "capacity", Long.toString(capacity)).setAttribute("unit", "bytes");
    Element target = child(d, vol, "target");
    child(d, target, "format").setAttribute("type", "qcow2");
    text(d, child(d, target, "permissions"), "mode", "0600");
    Element b = child(d, vol, "backingStore");
    text(d, b, "path", backing);
    child(d, b, "format").setAttribute("type", "qcow2");
    return SecureXml.serialise(d, false);
  }

  /** A directory storage pool's XML. */
  static String dirPool(String name, String path) {
    Document d = SecureXml.newDocument();
    Element pool = d.createElement("pool");
    d.appendChild(pool);
    pool.setAttribute("type", "dir");
    text(d, pool, "name", name);
    Element target = child(d, pool, "target");
    text(d, target, "path", path);
    text(d, child(d, target, "permissions"), "mode", "0755");
    return SecureXml.serialise(d, false);
  }

  /**
   * A raw volume's XML: sparse (nothing allocated until written), with the file mode given (boot
   * images are public; console logs are for the host's root only).
   */
  static String rawVolume(String name, long size, String mode) {
    Document d = SecureXml.newDocument();
    Element vol = d.createElement("volume");
    d.appendChild(vol);
    text(d, vol, "name", name);
    text(d, vol, "capacity", Long.toString(size)).setAttribute("unit", "bytes");
    text(d, vol, "allocation", "0").setAttribute("unit", "bytes");
    Element target = child(d, vol, "target");
    child(d, target, "format").setAttribute("type", "raw");
    text(d, child(d, target, "permissions"), "mode", mode);
    return SecureXml.serialise(d, false);
  }
}
