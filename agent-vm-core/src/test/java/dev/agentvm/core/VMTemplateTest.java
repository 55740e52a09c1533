package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.strings;

import java.io.StringReader;
import java.nio.file.Path;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPath;
import javax.xml.xpath.XPathFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.xml.sax.InputSource;

class VMTemplateTest {
  private static final BootSource BOOT =
      new BootSource(Path.of("/k/vmlinuz"), Path.of("/k/initrd"), "console=ttyS0");

  private static Document parse(String xml) throws Exception {
    DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
    f.setNamespaceAware(true);
    return f.newDocumentBuilder().parse(new InputSource(new StringReader(xml)));
  }

  private static String x(Document d, String path) throws Exception {
    XPath xp = XPathFactory.newInstance().newXPath();
    return xp.evaluate(path, d);
  }

  @Test
  void generatesTheDomainWeNeed() throws Exception {
    VMTemplate t =
        VMTemplate.builder("agentvm-x")
            .boot(BOOT)
            .resources(new ResourceProfile(2, 512))
            .runDir(Path.of("/run/x"))
            .owner("42@now")
            .build();
    Document d = parse(t.toDomainXml(VirtType.QEMU));
    assertEquals("qemu", x(d, "/domain/@type"));
    assertEquals("agentvm-x", x(d, "/domain/name"));
    assertEquals(t.uuid().toString(), x(d, "/domain/uuid"));
    assertEquals("512", x(d, "/domain/memory"));
    assertEquals("MiB", x(d, "/domain/memory/@unit"));
    assertEquals("2", x(d, "/domain/vcpu"));
    assertEquals("/k/vmlinuz", x(d, "/domain/os/kernel"));
    assertEquals("/k/initrd", x(d, "/domain/os/initrd"));
    assertEquals("console=ttyS0", x(d, "/domain/os/cmdline"));
    assertEquals("1", x(d, "count(/domain/features/acpi)"));
    assertEquals("destroy", x(d, "/domain/on_poweroff"));
    assertEquals("destroy", x(d, "/domain/on_crash"));
    assertEquals("pty", x(d, "/domain/devices/serial/@type"));
    assertEquals("/run/x/console.log", x(d, "/domain/devices/serial/log/@file"));
    assertEquals("/run/x/agent.sock", x(d, "/domain/devices/channel/source/@path"));
    assertEquals("bind", x(d, "/domain/devices/channel/source/@mode"));
    assertEquals("dev.agentvm.agent.0", x(d, "/domain/devices/channel/target/@name"));
    assertEquals("none", x(d, "/domain/devices/memballoon/@model"));
    assertTrue(t.toDomainXml(VirtType.KVM).contains("type=\"kvm\""));
    assertEquals(
        VMTemplate.METADATA_NS,
        d.getElementsByTagNameNS(VMTemplate.METADATA_NS, "vm").item(0).getNamespaceURI());
    assertEquals(
        "42@now",
        d.getElementsByTagNameNS(VMTemplate.METADATA_NS, "vm")
            .item(0)
            .getAttributes()
            .getNamedItem("owner")
            .getNodeValue());
  }

  @Test
  void anyCmdlineAndPathSurvivesEscaping() {
    qt().forAll(strings().allPossible().ofLengthBetween(0, 80), integers().between(128, 65536))
        .checkAssert(
            (s, mem) -> {
              // XML 1.0 cannot carry most control characters at all; libvirt would refuse them too
              String cmd =
                  s.replaceAll(
                      "[\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\uFFFE\\uFFFF\\uD800-\\uDFFF]", "");
              VMTemplate t =
                  VMTemplate.builder("n")
                      .boot(
                          new BootSource(
                              Path.of("/k/" + cmd.replace('/', '_').replace("\0", "")),
                              Path.of("/i"),
                              cmd))
                      .resources(new ResourceProfile(1, mem))
                      .build();
              try {
                Document d = parse(t.toDomainXml(VirtType.QEMU));
                // BootSource strips leading and trailing blanks (documented)
                assertEquals(cmd.strip(), x(d, "/domain/os/cmdline"));
                assertEquals(Integer.toString(mem), x(d, "/domain/memory"));
              } catch (Exception e) {
                throw new AssertionError(e);
              }
            });
  }

  /** Random templates with disks and shares: the XML reads back to the same template. */
  @Test
  void domainXmlReadsBackToTheSameTemplate() {
    qt().withExamples(300)
        .forAll(
            integers().between(0, 5),
            integers().between(0, 4),
            integers().between(128, 8192),
            strings().basicLatinAlphabet().ofLengthBetween(0, 20))
        .checkAssert(
            (nDisks, nShares, mem, word) -> {
              String safe = word.replaceAll("[^A-Za-z0-9_.-]", "x");
              VMTemplate.Builder b =
                  VMTemplate.builder("n" + safe)
                      .boot(
                          new BootSource(
                              Path.of("/k/" + safe), Path.of("/i"), "console=ttyS0 " + word))
                      .resources(new ResourceProfile(1 + nDisks, mem))
                      .runDir(Path.of("/run/" + safe))
                      .owner("1@" + safe)
                      .virtType(nShares % 2 == 0 ? VirtType.QEMU : VirtType.KVM);
              for (int i = 0; i < nDisks; i++) {
                b.disk(
                    new DiskAttachment(
                        Path.of("/d/" + safe + i + ".img"),
                        i % 2 == 0 ? DiskAttachment.Format.QCOW2 : DiskAttachment.Format.RAW,
                        "vd" + (char) ('a' + i),
                        i == 3,
                        i % 3 == 0 ? "" : "/data" + i));
              }
              for (int i = 0; i < nShares; i++) {
                b.share(new ShareAttachment(Path.of("/s/" + word + i), "t" + i, i % 2 == 1));
              }
              VMTemplate t = b.build();
              VMTemplate back = VMTemplate.fromDomainXml(t.toDomainXml(t.virtType()));
              assertEquals(t.name(), back.name());
              assertEquals(t.uuid(), back.uuid());
              assertEquals(t.genid(), back.genid());
              assertEquals(t.resources(), back.resources());
              assertEquals(t.boot(), back.boot());
              assertEquals(t.disks(), back.disks());
              assertEquals(t.shares(), back.shares());
              assertEquals(t.runDir(), back.runDir());
              assertEquals(t.virtType(), back.virtType());
              assertEquals(t.toDomainXml(t.virtType()), back.toDomainXml(back.virtType()));
            });
  }

  @Test
  void retargetChangesIdentityAndPathsOnly() throws Exception {
    VMTemplate saved =
        VMTemplate.builder("orig")
            .boot(BOOT)
            .runDir(Path.of("/run/orig"))
            .disk(DiskAttachment.qcow2(Path.of("/img/vda.qcow2"), "vda", "/data"))
            .share(new ShareAttachment(Path.of("/img/ws"), "ws", false))
            .build();
    // libvirt adds addresses and more; they must survive untouched
    String savedXml =
        saved
            .toDomainXml(VirtType.QEMU)
            .replace("</devices>", "<controller type='pci' index='0' model='pci-root'/></devices>");
    VMTemplate clone =
        saved
            .copyAs("clone")
            .runDir(Path.of("/run/clone"))
            .disk(DiskAttachment.qcow2(Path.of("/run/clone/vda.qcow2"), "vda", "/data"))
            .share(new ShareAttachment(Path.of("/w/clone"), "ws", false))
            .owner("7@x")
            .build();
    Document d = parse(clone.retarget(savedXml));
    assertEquals("clone", x(d, "/domain/name"));
    assertEquals(clone.uuid().toString(), x(d, "/domain/uuid"));
    assertEquals(clone.genid().toString(), x(d, "/domain/genid"));
    assertEquals("/run/clone/vda.qcow2", x(d, "/domain/devices/disk/source/@file"));
    assertEquals("/w/clone", x(d, "/domain/devices/filesystem/source/@dir"));
    assertEquals("/run/clone/agent.sock", x(d, "/domain/devices/channel/source/@path"));
    assertEquals("/run/clone/console.log", x(d, "/domain/devices/serial/log/@file"));
    assertEquals("pci-root", x(d, "/domain/devices/controller/@model"));
    VMTemplate back = VMTemplate.fromDomainXml(clone.retarget(savedXml));
    assertEquals("7@x", x(d, "/domain/metadata/*[local-name()='vm']/@owner"));
    assertEquals(Path.of("/run/clone"), back.runDir());

    VMTemplate noDisk =
        saved.copyAs("clone2").share(new ShareAttachment(Path.of("/w"), "ws", false)).build();
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> noDisk.retarget(savedXml));
    assertTrue(e.getMessage().contains("disk vda"), e.getMessage());
  }

  @Test
  void attachmentsAreValidated() {
    assertThrows(
        IllegalArgumentException.class,
        () -> new DiskAttachment(Path.of("/x"), DiskAttachment.Format.RAW, "sda", false, ""));
    assertThrows(
        IllegalArgumentException.class,
        () ->
            new DiskAttachment(Path.of("/x"), DiskAttachment.Format.RAW, "vda", false, "/a/../b"));
    assertThrows(
        IllegalArgumentException.class,
        () -> new DiskAttachment(Path.of("/x"), DiskAttachment.Format.RAW, "vda", false, "rel"));
    assertThrows(
        IllegalArgumentException.class, () -> new ShareAttachment(Path.of("/x"), "a b", false));
    assertThrows(
        IllegalArgumentException.class,
        () -> new ShareAttachment(Path.of("/x"), "x".repeat(32), false));
    VMTemplate.Builder b =
        VMTemplate.builder("d").boot(BOOT).disk(DiskAttachment.qcow2(Path.of("/a"), "vda", ""));
    assertThrows(
        IllegalArgumentException.class,
        () -> b.disk(DiskAttachment.qcow2(Path.of("/b"), "vda", "")));
    b.share(new ShareAttachment(Path.of("/s"), "ws", false));
    assertThrows(
        IllegalArgumentException.class,
        () -> b.share(new ShareAttachment(Path.of("/t"), "ws", true)));
  }

  @Test
  void validatesWithMessagesNamingFieldAndValue() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> new ResourceProfile(1, 64));
    assertEquals("memoryMiB must be >= 128, was 64", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new ResourceProfile(0, 256));
    assertThrows(IllegalArgumentException.class, () -> VMTemplate.builder("bad name"));
    assertThrows(IllegalArgumentException.class, () -> VMTemplate.builder("../etc"));
    assertThrows(IllegalArgumentException.class, () -> VMTemplate.builder(""));
    assertThrows(NullPointerException.class, () -> VMTemplate.builder("ok").build());
    assertThrows(
        IllegalStateException.class,
        () -> VMTemplate.builder("ok").boot(BOOT).build().toDomainXml(VirtType.AUTO));
  }

  @Test
  void customizerSeesTheDocument() throws Exception {
    VMTemplate t =
        VMTemplate.builder("c")
            .boot(BOOT)
            .customizer(
                doc ->
                    doc.getDocumentElement()
                        .appendChild(doc.createElement("description"))
                        .setTextContent("hi"))
            .build();
    assertEquals("hi", x(parse(t.toDomainXml(VirtType.QEMU)), "/domain/description"));
  }

  @Test
  void virtTypeParsing() {
    assertEquals(VirtType.QEMU, VirtType.parse("tcg"));
    assertEquals(VirtType.KVM, VirtType.parse(" KVM "));
    assertEquals(VirtType.AUTO, VirtType.parse("auto"));
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> VirtType.parse("xen"));
    assertTrue(e.getMessage().contains("AGENTVM_VIRT_TYPE"), e.getMessage());
  }

  @Test
  void stateTransitions() {
    assertTrue(VMState.DEFINED.canTransitionTo(VMState.RUNNING));
    assertTrue(VMState.RUNNING.canTransitionTo(VMState.CRASHED));
    assertTrue(VMState.CRASHED.canTransitionTo(VMState.UNDEFINED));
    assertTrue(!VMState.RUNNING.canTransitionTo(VMState.UNDEFINED));
    assertTrue(!VMState.UNDEFINED.canTransitionTo(VMState.RUNNING));
    for (VMState s : VMState.values()) {
      assertTrue(!s.canTransitionTo(s), s + " -> itself");
    }
  }
}
