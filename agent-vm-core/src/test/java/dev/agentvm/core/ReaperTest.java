package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.spi.DomainDescription;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The reaper's decisions, against the fake hypervisor: no XML, no libvirt. */
class ReaperTest {
  private static final BootSource BOOT = new BootSource(Path.of("/k"), Path.of("/i"), "");

  /** An owner id whose process cannot exist (pid 0 is never a user process). */
  private static final String DEAD = "999999999@1970-01-01T00:00:00Z";

  @TempDir Path tmp;

  private VMTemplate template(String name, String owner) {
    return VMTemplate.builder(name).boot(BOOT).runDir(tmp.resolve(name)).owner(owner).build();
  }

  @Test
  void reapsOrphansOnlyAndSaysWhatItCouldNot() throws Exception {
    FakeHypervisor hv = new FakeHypervisor();
    VMTemplate orphan = template("orphan", DEAD);
    Files.createDirectories(orphan.runDir());
    hv.add(orphan, VirtType.QEMU).start();
    VMTemplate stopped = template("stopped-orphan", DEAD);
    Files.createDirectories(stopped.runDir());
    hv.add(stopped, VirtType.QEMU);
    hv.add(template("mine", LibvirtConnection.processOwner()), VirtType.QEMU).start();
    hv.addForeign("foreign").start();
    // ours by its metadata, but no longer readable as a template
    VMTemplate unreadable = template("unreadable", DEAD);
    DomainDescription full = DomainDescription.of(unreadable, "fp");
    hv.add(unreadable, VirtType.QEMU);
    FakeHypervisor.FakeDomain broken =
        hv
        .new FakeDomain(
            new DomainDescription(
                full.name(),
                full.uuid(),
                full.owner(),
                full.runDir(),
                null,
                full.hostPaths(),
                full.networks(),
                full.filters(),
                full.fingerprint()));
    hv.replace(broken);

    try (LibvirtConnection conn = LibvirtConnection.using(hv)) {
      Reaper.Report r = Reaper.reapOrphans(conn, Duration.ofMillis(200));
      assertEquals(5, r.examined());
      assertEquals(3, r.orphans(), r.toString());
      assertEquals(2, r.removed(), r.toString());
      assertEquals(1, r.stoppedGracefully(), r.toString());
      assertEquals(1, r.failures().size(), r.failures().toString());
      assertTrue(r.failures().get(0).startsWith("unreadable: "), r.failures().toString());
      assertTrue(r.failures().get(0).contains("virsh undefine unreadable"), r.failures().get(0));
      assertEquals(
          List.of("foreign", "mine", "unreadable"), hv.domainNames().stream().sorted().toList());
      assertFalse(Files.exists(orphan.runDir()), "the orphan's runtime directory is gone");
      assertFalse(Files.exists(stopped.runDir()));
    }
  }

  @Test
  void attachReadsTheTemplateBackAndRefusesForeignDomains() {
    FakeHypervisor hv = new FakeHypervisor();
    VMTemplate t = template("kept", LibvirtConnection.processOwner());
    hv.add(t, VirtType.KVM).start();
    hv.addForeign("foreign");
    try (LibvirtConnection conn = LibvirtConnection.using(hv)) {
      VM vm = conn.attach("kept");
      assertEquals(t.uuid(), vm.template().uuid());
      assertEquals(VMState.RUNNING, vm.state());
      assertThrows(IllegalArgumentException.class, () -> conn.attach("foreign"));
      assertThrows(NoSuchVmException.class, () -> conn.attach("absent"));
      vm.close();
      assertFalse(hv.domainNames().contains("kept"));
    }
  }

  @Test
  void defineAndUndefineGoThroughTheSeamWithTheirOwner() throws Exception {
    FakeHypervisor hv = new FakeHypervisor();
    try (LibvirtConnection conn = LibvirtConnection.using(hv)) {
      VMTemplate t =
          VMTemplate.builder("d")
              .boot(BOOT)
              .runDir(tmp.resolve("d"))
              .virtType(VirtType.QEMU)
              .build();
      try (VM vm = conn.define(t)) {
        assertEquals(VMState.DEFINED, vm.state());
        assertEquals(
            LibvirtConnection.processOwner(), hv.lookup("d").orElseThrow().description().owner());
        assertTrue(Files.isDirectory(t.runDir()));
        vm.start();
        vm.pause();
        assertEquals(VMState.PAUSED, vm.state());
        vm.resume();
        assertEquals(VMState.RUNNING, vm.state());
      }
      assertEquals(List.of(), hv.domainNames());
      assertFalse(Files.exists(t.runDir()));
    }
  }
}
