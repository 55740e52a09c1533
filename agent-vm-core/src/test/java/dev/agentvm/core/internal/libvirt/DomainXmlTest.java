package dev.agentvm.core.internal.libvirt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.longs;
import static org.quicktheories.generators.SourceDSL.strings;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.NetworkAttachment;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import dev.agentvm.core.spi.DomainDescription;
import dev.agentvm.internal.Setting;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

/** The domain XML writer and reader: round trips of generated templates, and hostile input. */
class DomainXmlTest {
  private static final BootSource BOOT =
      new BootSource(Path.of("/k/vmlinuz"), Path.of("/k/initrd"), "console=ttyS0");

  /** Characters XML 1.0 cannot carry at all (libvirt would refuse them too). */
  private static String xmlSafe(String s) {
    return s.replaceAll("[\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\uFFFE\\uFFFF\\uD800-\\uDFFF]", "");
  }

  /** A template with everything a template can have, chosen by {@code seed}. */
  static VMTemplate generated(long seed, String text) {
    Random r = new Random(seed);
    String word = xmlSafe(text);
    String safe = word.replaceAll("[^A-Za-z0-9_.-]", "x");
    VMTemplate.Builder b =
        VMTemplate.builder("n" + safe.substring(0, Math.min(safe.length(), 40)))
            .uuid(new UUID(r.nextLong(), r.nextLong()))
            .genid(new UUID(r.nextLong(), r.nextLong()))
            .boot(
                new BootSource(
                    Path.of("/k/" + safe), Path.of("/i/" + safe), "console=ttyS0 " + word))
            .resources(
                new ResourceProfile(1 + r.nextInt(8), 128 + r.nextInt(16 * 1024))
                    .withDiskLimits(
                        r.nextInt(3) == 0 ? 0 : 1 + (r.nextLong() >>> 20),
                        r.nextInt(3) == 0 ? 0 : 1 + r.nextInt(Integer.MAX_VALUE - 1)))
            .runDir(Path.of("/run/" + safe))
            .owner(r.nextInt(100_000) + "@" + word)
            .virtType(r.nextBoolean() ? VirtType.QEMU : VirtType.KVM);
    int disks = r.nextInt(6);
    for (int i = 0; i < disks; i++) {
      b.disk(
          new DiskAttachment(
              Path.of("/d/" + word.replace("\0", "") + i + ".img"),
              r.nextBoolean() ? DiskAttachment.Format.QCOW2 : DiskAttachment.Format.RAW,
              "vd" + (char) ('a' + i),
              r.nextBoolean(),
              r.nextInt(3) == 0 ? "" : "/data" + i));
    }
    int shares = r.nextInt(4);
    for (int i = 0; i < shares; i++) {
      b.share(new ShareAttachment(Path.of("/s/" + word + i), "t" + i, r.nextBoolean()));
    }
    int nics = r.nextInt(3);
    for (int i = 0; i < nics; i++) {
      Map<String, String> params = new TreeMap<>();
      if (r.nextBoolean()) {
        params.put("IP", "10.0.0." + (2 + i));
        params.put("AGENTVM_NOTE", word);
      }
      b.nic(
          new NetworkAttachment(
              r.nextBoolean() ? NetworkAttachment.Kind.NETWORK : NetworkAttachment.Kind.BRIDGE,
              "net" + safe.substring(0, Math.min(safe.length(), 20)),
              String.format("02:00:00:00:%02x:%02x", r.nextInt(256), i),
              params.isEmpty() ? "" : "agentvm-f" + i,
              params));
    }
    return b.build();
  }

  @Test
  void writtenTemplatesReadBackTheSame() {
    qt().withExamples(300)
        .forAll(longs().all(), strings().allPossible().ofLengthBetween(0, 30))
        .checkAssert(
            (seed, text) -> {
              VMTemplate t = generated(seed, text);
              String xml = DomainXmlWriter.write(t, t.virtType(), null);
              VMTemplate back = DomainXmlReader.template(xml);
              assertEquals(t.name(), back.name());
              assertEquals(t.uuid(), back.uuid());
              assertEquals(t.genid(), back.genid());
              assertEquals(t.owner(), back.owner());
              assertEquals(t.resources(), back.resources());
              assertEquals(t.boot(), back.boot());
              assertEquals(t.disks(), back.disks());
              assertEquals(t.shares(), back.shares());
              assertEquals(t.nics(), back.nics());
              assertEquals(t.runDir(), back.runDir());
              assertEquals(t.virtType(), back.virtType());
              assertEquals(xml, DomainXmlWriter.write(back, back.virtType(), null));
            });
  }

  @Test
  void writtenTemplatesDescribeThemselves() {
    qt().withExamples(200)
        .forAll(longs().all(), strings().allPossible().ofLengthBetween(0, 30))
        .checkAssert(
            (seed, text) -> {
              VMTemplate t = generated(seed, text);
              DomainDescription d =
                  DomainXmlReader.describe(DomainXmlWriter.write(t, VirtType.QEMU, null));
              assertEquals(t.name(), d.name());
              assertEquals(t.uuid().toString(), d.uuid());
              assertEquals(t.owner().orElseThrow(), d.owner());
              assertEquals(t.runDir(), d.runDir());
              assertTrue(d.templateIfAny().isPresent());
              assertTrue(d.hostPaths().contains(t.agentSocket()), d.hostPaths().toString());
              assertTrue(d.hostPaths().contains(t.consoleLog()));
              assertTrue(d.hostPaths().contains(t.boot().kernel()));
              t.disks().forEach(x -> assertTrue(d.uses(x.file()), x.file().toString()));
              t.shares().forEach(x -> assertTrue(d.uses(x.hostDir()), x.hostDir().toString()));
              assertEquals(
                  t.nics().stream()
                      .filter(n -> n.kind() == NetworkAttachment.Kind.NETWORK)
                      .map(NetworkAttachment::source)
                      .distinct()
                      .toList(),
                  d.networks());
              assertEquals(
                  t.nics().stream()
                      .map(NetworkAttachment::filter)
                      .filter(f -> !f.isEmpty())
                      .distinct()
                      .toList(),
                  d.filters());
              // the fake backend's description says the same of a template
              DomainDescription fake = DomainDescription.of(t, "x");
              assertEquals(Set.copyOf(fake.hostPaths()), Set.copyOf(d.hostPaths()));
              assertEquals(fake.networks(), d.networks());
              assertEquals(fake.filters(), d.filters());
            });
  }

  @Test
  void theFingerprintIgnoresTheOwnerOnly() {
    VMTemplate t = VMTemplate.builder("fp").boot(BOOT).owner("1@a").build();
    String fp =
        DomainXmlReader.describe(DomainXmlWriter.write(t, VirtType.QEMU, null)).fingerprint();
    VMTemplate otherOwner = t.newBuilder().owner("2@b").build();
    assertEquals(
        fp,
        DomainXmlReader.describe(DomainXmlWriter.write(otherOwner, VirtType.QEMU, null))
            .fingerprint());
    VMTemplate moreMemory = t.newBuilder().resources(new ResourceProfile(1, 1024)).build();
    assertNotEquals(
        fp,
        DomainXmlReader.describe(DomainXmlWriter.write(moreMemory, VirtType.QEMU, null))
            .fingerprint());
    assertEquals(64, fp.length());
  }

  @Test
  void readsWhatLibvirtWritesBack() {
    // libvirt's own text: single quotes, KiB, addresses, backing chains, a live id
    String xml =
        "<domain type='kvm' id='7'>\n"
            + "  <name>agentvm-x</name>\n"
            + "  <uuid>0b5a8a2e-8d0f-4a8e-9a55-2f0e4b1c9d11</uuid>\n"
            + "  <genid>1b5a8a2e-8d0f-4a8e-9a55-2f0e4b1c9d11</genid>\n"
            + "  <metadata>\n"
            + "    <agentvm:vm xmlns:agentvm='https://agentvm.dev/xmlns/domain/1'"
            + " owner='42@2026-01-01T00:00:00Z' runDir='/run/agentvm/x'/>\n"
            + "  </metadata>\n"
            + "  <memory unit='KiB'>524288</memory>\n"
            + "  <currentMemory unit='KiB'>524288</currentMemory>\n"
            + "  <vcpu placement='static'>2</vcpu>\n"
            + "  <os><type arch='x86_64' machine='pc-i440fx-8.2'>hvm</type>"
            + "<kernel>/k/vmlinux</kernel><initrd>/k/initrd</initrd>"
            + "<cmdline>console=ttyS0 agentvm.mount=vda:/data</cmdline></os>\n"
            + "  <devices>\n"
            + "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
            + "    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            + "<source file='/run/agentvm/x/vda.qcow2' index='2'/>"
            + "<backingStore type='file' index='3'><format type='qcow2'/>"
            + "<source file='/var/lib/agentvm/images/base.qcow2'/><backingStore/></backingStore>"
            + "<target dev='vda' bus='virtio'/>"
            + "<address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>\n"
            + "    <filesystem type='mount' accessmode='mapped'><source dir='/w/ws'/>"
            + "<target dir='ws'/></filesystem>\n"
            + "    <interface type='network'><mac address='02:00:00:00:00:01'/>"
            + "<source network='agentvm-nat' portid='x' bridge='virbr9'/>"
            + "<target dev='vnet3'/><model type='virtio'/>"
            + "<filterref filter='agentvm-allow'><parameter name='IP' value='10.0.0.2'/>"
            + "</filterref></interface>\n"
            + "    <serial type='pty'><source path='/dev/pts/3'/>"
            + "<log file='/run/agentvm/x/console.log' append='off'/><target port='0'/></serial>\n"
            + "    <channel type='unix'><source mode='bind' path='/run/agentvm/x/agent.sock'/>"
            + "<target type='virtio' name='dev.agentvm.agent.0' state='connected'/></channel>\n"
            + "  </devices>\n"
            + "</domain>\n";
    DomainDescription d = DomainXmlReader.describe(xml);
    assertEquals("agentvm-x", d.name());
    assertEquals("42@2026-01-01T00:00:00Z", d.owner());
    assertEquals(Path.of("/run/agentvm/x"), d.runDir());
    assertTrue(d.uses(Path.of("/var/lib/agentvm/images")), "the backing file counts");
    assertTrue(d.uses(Path.of("/w/ws")));
    assertFalse(d.uses(Path.of("/w/other")));
    assertEquals(List.of("agentvm-nat"), d.networks());
    assertEquals(List.of("agentvm-allow"), d.filters());
    VMTemplate t = d.templateIfAny().orElseThrow();
    assertEquals(new ResourceProfile(2, 512), t.resources());
    assertEquals(VirtType.KVM, t.virtType());
    assertEquals("console=ttyS0", t.boot().cmdline());
    assertEquals("/data", t.disks().get(0).guestMountPoint());
    assertEquals("10.0.0.2", t.nics().get(0).filterParameters().get("IP"));
  }

  @Test
  void retargetChangesIdentityAndPathsOnly() {
    VMTemplate saved =
        VMTemplate.builder("orig")
            .boot(BOOT)
            .runDir(Path.of("/run/orig"))
            .disk(DiskAttachment.qcow2(Path.of("/img/vda.qcow2"), "vda", "/data"))
            .share(new ShareAttachment(Path.of("/img/ws"), "ws", false))
            .nic(
                new NetworkAttachment(
                    NetworkAttachment.Kind.NETWORK,
                    "agentvm-nat",
                    "02:00:00:00:00:01",
                    "agentvm-f",
                    Map.of("IP", "10.0.0.2")))
            .build();
    // libvirt adds addresses, backing chains and more; the hardware must survive untouched
    String savedXml =
        DomainXmlWriter.write(saved, VirtType.QEMU, null)
            .replace("</devices>", "<controller type='pci' index='0' model='pci-root'/></devices>")
            .replace(
                "<target bus=\"virtio\" dev=\"vda\"/>",
                "<backingStore type='file'><source file='/img/base.qcow2'/></backingStore>"
                    + "<target bus=\"virtio\" dev=\"vda\"/>");
    assertTrue(savedXml.contains("backingStore"), savedXml);
    VMTemplate clone =
        saved
            .copyAs("clone")
            .runDir(Path.of("/run/clone"))
            .disk(DiskAttachment.qcow2(Path.of("/run/clone/vda.qcow2"), "vda", "/data"))
            .share(new ShareAttachment(Path.of("/w/clone"), "ws", false))
            .nic(
                new NetworkAttachment(
                    NetworkAttachment.Kind.NETWORK,
                    "agentvm-nat",
                    "02:00:00:00:00:02",
                    "agentvm-f",
                    Map.of("IP", "10.0.0.3")))
            .owner("7@x")
            .build();
    String retargeted = DomainXmlWriter.retarget(savedXml, clone);
    DomainDescription d = DomainXmlReader.describe(retargeted);
    assertEquals("clone", d.name());
    assertEquals(clone.uuid().toString(), d.uuid());
    assertEquals("7@x", d.owner());
    assertEquals(Path.of("/run/clone"), d.runDir());
    assertFalse(d.uses(Path.of("/img")), "no path of the saved VM is left: " + d.hostPaths());
    assertTrue(retargeted.contains("pci-root"));
    VMTemplate back = d.templateIfAny().orElseThrow();
    assertEquals(clone.genid(), back.genid());
    assertEquals(clone.disks(), back.disks());
    assertEquals(clone.shares(), back.shares());
    assertEquals(clone.nics(), back.nics());
    assertEquals(clone.agentSocket(), Path.of("/run/clone/agent.sock"));
    assertTrue(d.hostPaths().contains(clone.agentSocket()));
    assertTrue(d.hostPaths().contains(clone.consoleLog()));

    // the template's filter parameters replace the saved ones, none kept, none missing
    VMTemplate learning =
        saved
            .copyAs("clone3")
            .disk(DiskAttachment.qcow2(Path.of("/run/clone3/vda.qcow2"), "vda", "/data"))
            .share(new ShareAttachment(Path.of("/w/clone3"), "ws", false))
            .nic(
                new NetworkAttachment(
                    NetworkAttachment.Kind.NETWORK,
                    "agentvm-nat",
                    "02:00:00:00:00:03",
                    "agentvm-f",
                    Map.of("CTRL_IP_LEARNING", "dhcp")))
            .build();
    assertEquals(
        Map.of("CTRL_IP_LEARNING", "dhcp"),
        DomainXmlReader.describe(DomainXmlWriter.retarget(savedXml, learning))
            .templateIfAny()
            .orElseThrow()
            .nics()
            .get(0)
            .filterParameters());

    VMTemplate noDisk =
        saved.copyAs("clone2").share(new ShareAttachment(Path.of("/w"), "ws", false)).build();
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> DomainXmlWriter.retarget(savedXml, noDisk));
    assertTrue(e.getMessage().contains("disk vda"), e.getMessage());
    VMTemplate noShare =
        saved
            .copyAs("clone3")
            .disk(DiskAttachment.qcow2(Path.of("/x"), "vda", ""))
            .nic(clone.nics().get(0))
            .build();
    e =
        assertThrows(
            IllegalArgumentException.class, () -> DomainXmlWriter.retarget(savedXml, noShare));
    assertTrue(e.getMessage().contains("share ws"), e.getMessage());
    VMTemplate noNic =
        saved
            .copyAs("clone4")
            .disk(DiskAttachment.qcow2(Path.of("/x"), "vda", ""))
            .share(new ShareAttachment(Path.of("/w"), "ws", false))
            .build();
    e =
        assertThrows(
            IllegalArgumentException.class, () -> DomainXmlWriter.retarget(savedXml, noNic));
    assertTrue(e.getMessage().contains("1 NICs"), e.getMessage());
  }

  @Test
  void externalEntitiesAndDoctypesAreRefused() {
    String xxe =
        "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
            + "<domain><name>&x;</name></domain>";
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.describe(xxe));
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.template(xxe));
    assertThrows(
        IllegalArgumentException.class,
        () -> DomainXmlWriter.retarget(xxe, VMTemplate.builder("a").boot(BOOT).build()));
    String laughs =
        "<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>"
            + "<domain><name>&b;</name></domain>";
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.describe(laughs));
    String caps = "<!DOCTYPE c SYSTEM 'http://127.0.0.1:1/x.dtd'><capabilities/>";
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.x86DomainTypes(caps));
  }

  @Test
  void brokenAndForeignDefinitionsAreToldApart() {
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.describe("<domain>"));
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.describe(""));
    assertThrows(
        IllegalArgumentException.class,
        () -> DomainXmlReader.describe("<network><name>n</name></network>"));
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.describe("<domain/>"));

    // not agent-vm's: described, but no owner and no template
    DomainDescription foreign =
        DomainXmlReader.describe(
            "<domain type='qemu'><name>f</name><memory>131072</memory></domain>");
    assertEquals("f", foreign.name());
    assertNull(foreign.owner());
    assertNull(foreign.runDir());
    assertNull(foreign.template());
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> DomainXmlReader.template("<domain><name>f</name></domain>"));
    assertTrue(e.getMessage().contains("metadata"), e.getMessage());

    // ours by its metadata, but with parts missing: the owner is known, the template is not
    String partial =
        "<domain><name>p</name><uuid>0b5a8a2e-8d0f-4a8e-9a55-2f0e4b1c9d11</uuid><metadata>"
            + "<agentvm:vm xmlns:agentvm='https://agentvm.dev/xmlns/domain/1' owner='1@x'"
            + " runDir='/run/p'/></metadata><vcpu>1</vcpu><memory unit='MiB'>128</memory>"
            + "</domain>";
    DomainDescription p = DomainXmlReader.describe(partial);
    assertEquals("1@x", p.owner());
    assertEquals(Path.of("/run/p"), p.runDir());
    assertNull(p.template());
    assertTrue(p.uses(Path.of("/run")));
    e = assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.template(partial));
    assertTrue(e.getMessage().contains("<os>"), e.getMessage());
    String badUuid = partial.replace("0b5a8a2e-8d0f-4a8e-9a55-2f0e4b1c9d11", "not-a-uuid");
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.template(badUuid));
    assertNull(DomainXmlReader.describe(badUuid).template());
    String badUnit = partial.replace("unit='MiB'", "unit='parsec'");
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.template(badUnit));
  }

  @Test
  void memoryUnitsAreReadAsLibvirtMeansThem() {
    for (var unit :
        Map.of("MiB", 512L, "M", 512L, "GiB", 1L, "KiB", 524288L, "", 524288L, "bytes", 536870912L)
            .entrySet()) {
      String xml =
          DomainXmlWriter.write(VMTemplate.builder("m").boot(BOOT).build(), VirtType.QEMU, null)
              .replaceAll(
                  "<memory unit=\"MiB\">\\d+</memory>",
                  "<memory"
                      + (unit.getKey().isEmpty() ? "" : " unit=\"" + unit.getKey() + "\"")
                      + ">"
                      + unit.getValue()
                      + "</memory>");
      int expected = unit.getKey().startsWith("G") ? 1024 : 512;
      assertEquals(
          expected,
          DomainXmlReader.template(xml).resources().memoryMiB(),
          unit.getKey() + ": " + xml);
    }
  }

  /** What a hardened domain needs, whatever the host's qemu.conf says (issue: QEMU confinement). */
  @Test
  void domainsCarryTheirHostSideLimitsAndNoUsb() {
    VMTemplate t =
        VMTemplate.builder("h")
            .boot(BOOT)
            .resources(new ResourceProfile(2, 512))
            .disk(
                new DiskAttachment(
                    Path.of("/d/a.qcow2"), DiskAttachment.Format.QCOW2, "vda", false, ""))
            .build();
    String tcg = DomainXmlWriter.write(t, VirtType.QEMU, null);
    assertTrue(tcg.contains("<controller model=\"none\" type=\"usb\"/>"), tcg);
    assertTrue(tcg.contains("<hard_limit unit=\"MiB\">1920</hard_limit>"), tcg); // 512+384+1024
    assertTrue(tcg.contains("<global_period>100000</global_period>"), tcg);
    assertTrue(tcg.contains("<global_quota>200000</global_quota>"), tcg);
    assertTrue(tcg.contains("<total_bytes_sec>268435456</total_bytes_sec>"), tcg);
    assertTrue(tcg.contains("<total_iops_sec>4000</total_iops_sec>"), tcg);
    String kvm = DomainXmlWriter.write(t, VirtType.KVM, null);
    assertTrue(kvm.contains("<hard_limit unit=\"MiB\">896</hard_limit>"), kvm);
    VMTemplate unthrottled = t.newBuilder().resources(t.resources().withDiskLimits(0, 0)).build();
    assertFalse(DomainXmlWriter.write(unthrottled, VirtType.QEMU, null).contains("iotune"));
    assertThrows(IllegalArgumentException.class, () -> new ResourceProfile(1, 256, -1, 0));
    assertThrows(IllegalArgumentException.class, () -> new ResourceProfile(1, 256, 0, -1));
  }

  private static int cpuCheckEntries(String xml) {
    Document d = DomainXmlReader.parse(xml);
    int n = 0;
    for (Element del :
        DomainXmlReader.allNs(d.getDocumentElement(), DomainXmlWriter.QEMU_NS, "del")) {
      if (DomainXmlWriter.CPU_CHECK_CAPABILITY.equals(del.getAttribute("capability"))) {
        n++;
      }
    }
    return n;
  }

  @Test
  void domainsAskForLibvirtsTwoQueryCpuCheckOnceAndCanOptOut() {
    VMTemplate t = VMTemplate.builder("cpu").boot(BOOT).build();
    String xml = DomainXmlWriter.write(t, VirtType.QEMU, null);
    assertEquals(1, cpuCheckEntries(xml), xml);
    // a restore under a new identity keeps one, and adds it to an image saved without it
    VMTemplate other = t.copyAs("cpu2").build();
    assertEquals(1, cpuCheckEntries(DomainXmlWriter.retarget(xml, other)));
    String old = xml.replaceAll("(?s)<qemu:capabilities>.*</qemu:capabilities>", "");
    assertEquals(0, cpuCheckEntries(old), old);
    assertEquals(1, cpuCheckEntries(DomainXmlWriter.retarget(old, other)));
    // a customizer's own qemu namespace entries are kept beside it
    String custom =
        DomainXmlWriter.write(
            t,
            VirtType.QEMU,
            doc -> {
              Element cl = doc.createElementNS(DomainXmlWriter.QEMU_NS, "qemu:commandline");
              doc.getDocumentElement().appendChild(cl);
            });
    assertEquals(1, cpuCheckEntries(custom), custom);
    assertTrue(custom.contains("qemu:commandline"), custom);
    // a definition that already binds "qemu" to another namespace keeps its binding
    String foreign =
        xml.replaceAll("(?s)<qemu:capabilities>.*</qemu:capabilities>", "")
            .replace("xmlns:qemu=\"" + DomainXmlWriter.QEMU_NS + "\"", "xmlns:qemu=\"urn:x\"");
    String fixed = DomainXmlWriter.retarget(foreign, other);
    assertEquals(1, cpuCheckEntries(fixed), fixed);
    assertTrue(fixed.contains("xmlns:qemu=\"urn:x\""), fixed);
    // two entries (a customised definition) become one
    String twice =
        xml.replace(
            "</qemu:capabilities>",
            "<qemu:del capability=\""
                + DomainXmlWriter.CPU_CHECK_CAPABILITY
                + "\"/></qemu:capabilities>");
    assertEquals(2, cpuCheckEntries(twice), twice);
    assertEquals(1, cpuCheckEntries(DomainXmlWriter.retarget(twice, other)));
    System.setProperty(Setting.FAST_CPU_CHECK.property(), "off");
    try {
      assertEquals(0, cpuCheckEntries(DomainXmlWriter.write(t, VirtType.QEMU, null)));
      assertEquals(0, cpuCheckEntries(DomainXmlWriter.retarget(old, other)));
      // an image saved with it restores without it: off means libvirt's own check
      String back = DomainXmlWriter.retarget(xml, other);
      assertEquals(0, cpuCheckEntries(back), back);
      assertFalse(back.contains("qemu:capabilities"), back);
      // a customizer's own capability entries stay
      String own =
          xml.replace(
              "</qemu:capabilities>", "<qemu:add capability=\"blockdev\"/></qemu:capabilities>");
      String kept = DomainXmlWriter.retarget(own, other);
      assertEquals(0, cpuCheckEntries(kept), kept);
      assertTrue(kept.contains("capability=\"blockdev\""), kept);
    } finally {
      System.clearProperty(Setting.FAST_CPU_CHECK.property());
    }
  }

  @Test
  void theCustomizerSeesTheDocumentBeforeItIsWritten() {
    VMTemplate t = VMTemplate.builder("c").boot(BOOT).build();
    String xml =
        DomainXmlWriter.write(
            t,
            VirtType.QEMU,
            (Document doc) ->
                doc.getDocumentElement()
                    .appendChild(doc.createElement("description"))
                    .setTextContent("hi & <bye>"));
    assertTrue(xml.contains("<description>hi &amp; &lt;bye&gt;</description>"), xml);
    assertThrows(IllegalStateException.class, () -> DomainXmlWriter.write(t, VirtType.AUTO, null));
  }

  @Test
  void snapshotRequestsAreEscaped() {
    String xml = DomainXmlWriter.snapshot("clean", "a <b> & 'c'");
    assertEquals(
        "<domainsnapshot><name>clean</name><description>a &lt;b&gt; &amp; 'c'</description>"
            + "</domainsnapshot>",
        xml);
    assertEquals(
        "clean", DomainXmlReader.parse(xml).getElementsByTagName("name").item(0).getTextContent());
  }

  @Test
  void capabilitiesNameTheX86DomainTypes() {
    String caps =
        "<capabilities><host><cpu><arch>x86_64</arch></cpu></host>"
            + "<guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/>"
            + "<domain type='xen'/></arch></guest>"
            + "<guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>"
            + "<domain type='qemu'/><domain type='kvm'><emulator>/x</emulator></domain>"
            + "</arch></guest></capabilities>";
    assertEquals(List.of("qemu", "kvm"), List.copyOf(DomainXmlReader.x86DomainTypes(caps)));
    assertEquals(Set.of(), DomainXmlReader.x86DomainTypes("<capabilities/>"));
  }

  @Test
  void capabilitiesNameTheSecurityModels() {
    String caps =
        "<capabilities><host><secmodel><model>none</model><doi>0</doi></secmodel>"
            + "<secmodel><model>apparmor</model><doi>0</doi></secmodel>"
            + "<secmodel><model>dac</model><doi>0</doi>"
            + "<baselabel type='kvm'>+64055:+64055</baselabel>"
            + "<baselabel type='qemu'>+64055:+64055</baselabel></secmodel></host></capabilities>";
    var sec = DomainXmlReader.securityModels(caps);
    assertEquals(List.of("apparmor", "dac"), sec.getKey());
    assertEquals("+64055:+64055", sec.getValue());
    assertEquals(List.of(), DomainXmlReader.securityModels("<capabilities/>").getKey());
  }

  @Test
  void restoredDomainsAreNamedByTheirDefinition() {
    assertEquals("x", DomainXmlReader.name("<domain><name> x </name></domain>"));
    assertThrows(IllegalArgumentException.class, () -> DomainXmlReader.name("<domain/>"));
  }
}
