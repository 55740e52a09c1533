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
