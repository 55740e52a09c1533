package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.ProcessOwners;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Against the real libvirt daemon, without booting: definitions, errors, connection handling. */
class LibvirtConnectionIT extends RealLibvirtTest {
  @Test
  void closeIsIdempotent() {
    LibvirtConnection c = LibvirtConnection.open();
    assertTrue(c.isConnected());
    c.close();
    assertFalse(c.isConnected());
    c.close();
  }

  @Test
  void libvirtAcceptsEveryTemplateVariantAndReadsItBack() {
    List<ResourceProfile> profiles =
        List.of(
            ResourceProfile.LIGHT,
            ResourceProfile.STANDARD,
            ResourceProfile.INTENSIVE,
            new ResourceProfile(3, 777));
    String[] cmdlines = {
      "console=ttyS0",
      "a='quoted' b=\"double\" c=<angle> d=&amp; e=\u00e9\u4e2d",
      "  spaced   out  "
    };
    // libvirt refuses to define a kvm domain where it has no KVM (a host without /dev/kvm)
    List<VirtType> types =
        conn.backend().advertisedDomainTypes().contains("kvm")
            ? List.of(VirtType.QEMU, VirtType.KVM)
            : List.of(VirtType.QEMU);
    for (ResourceProfile p : profiles) {
      for (String cmd : cmdlines) {
        for (VirtType type : types) {
          VMTemplate t =
              VMTemplate.builder(TestVms.name("def"))
                  .resources(p)
                  .virtType(type)
                  .boot(TestVms.boot().withExtraCmdline(cmd))
                  .build();
          try (VM vm = conn.define(t)) {
            assertEquals(VMState.DEFINED, vm.state());
            assertEquals(type, vm.virtType());
            String xml = conn.backend().lookup(t.name()).orElseThrow().xml();
            assertTrue(
                xml.contains("<memory unit='KiB'>" + p.memoryMiB() * 1024 + "</memory>"), xml);
            assertTrue(xml.contains(">" + p.vcpus() + "</vcpu>"), xml);
            assertTrue(xml.contains("domain type='" + type.libvirtName() + "'"), xml);
            assertTrue(xml.contains(VMTemplate.METADATA_NS), xml);
            assertTrue(xml.contains(ProcessOwners.CURRENT), xml);
          }
          TestVms.assertNothingLeft(conn, t);
        }
      }
    }
  }

  @Test
  void unreachableUriIsAConnectionExceptionNamingIt() {
    ConnectionException e =
        assertThrows(
            ConnectionException.class,
            () ->
                LibvirtConnection.open(
                    "qemu+unix:///system?socket=/nonexistent/sock", Duration.ofMillis(300)));
    assertEquals("qemu+unix:///system?socket=/nonexistent/sock", e.uri());
    assertTrue(e.getMessage().contains("/nonexistent/sock"), e.getMessage());
  }

  @Test
  void invalidDefinitionIsAHypervisorExceptionAndLeavesNoRunDir() {
    VMTemplate bad =
        VMTemplate.builder(TestVms.name("bad"))
            .virtType(VirtType.QEMU)
            .boot(TestVms.boot())
            .customizer(
                d ->
                    d.getDocumentElement()
                        .getElementsByTagName("vcpu")
                        .item(0)
                        .setTextContent("zero"))
            .build();
    assertThrows(HypervisorException.class, () -> conn.define(bad));
    TestVms.assertNothingLeft(conn, bad);
  }

  @Test
  void operationsOnAnUndefinedVmFailClearly() {
    VMTemplate t =
        VMTemplate.builder(TestVms.name("gone"))
            .virtType(VirtType.QEMU)
            .boot(TestVms.boot())
            .build();
    VM vm = conn.define(t);
    vm.close();
    assertEquals(VMState.UNDEFINED, vm.state());
    assertThrows(VmStateException.class, vm::start);
  }
}
