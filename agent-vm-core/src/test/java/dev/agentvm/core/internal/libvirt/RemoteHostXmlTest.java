package dev.agentvm.core.internal.libvirt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.HypervisorException;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Domain XML for a host that does not share this machine's files, and what counts as local. */
class RemoteHostXmlTest {
  private static final BootSource BOOT =
      new BootSource(Path.of("/cache/kernel"), Path.of("/cache/initramfs.img"), "console=ttyS0");
  private static final String URI = "qemu+tls://h1/system";

  private final List<String> staged = new ArrayList<>();

  private String stage(String p) {
    staged.add(p);
    return "/pool/img-" + Path.of(p).getFileName();
  }

  @Test
  void bootImagesAndReadOnlyDisksAreStagedAndTheConsoleAndSocketAreTheHosts() {
    VMTemplate t =
        VMTemplate.builder("vm1")
            .boot(BOOT)
            .disk(
                new DiskAttachment(
                    Path.of("/cache/pkgs.ext4"), DiskAttachment.Format.RAW, "vdb", true, "/opt"))
            .build();
    String xml =
        DomainXmlWriter.forRemoteHost(
            t.toDomainXml(VirtType.QEMU), this::stage, n -> "/pool/" + n + ".log", URI);
    assertEquals(List.of("/cache/kernel", "/cache/initramfs.img", "/cache/pkgs.ext4"), staged);
    assertTrue(xml.contains("<kernel>/pool/img-kernel</kernel>"), xml);
    assertTrue(xml.contains("<initrd>/pool/img-initramfs.img</initrd>"), xml);
    assertTrue(xml.contains("file=\"/pool/img-pkgs.ext4\""), xml);
    assertEquals(Optional.of("/pool/vm1.log"), DomainXmlReader.consoleLogFile(xml));
    assertFalse(xml.contains("agent.sock"), "libvirt places the socket on the host: " + xml);
    assertFalse(xml.contains("/cache/"), xml);
  }

  @Test
  void writableDisksAndSharesAreRefusedBeforeAnythingIsStaged() {
    VMTemplate disk =
        VMTemplate.builder("vm2")
            .boot(BOOT)
            .disk(DiskAttachment.qcow2(Path.of("/state/top.qcow2"), "vdb", "/workspace"))
            .build();
    HypervisorException e =
        assertThrows(
            HypervisorException.class,
            () ->
                DomainXmlWriter.forRemoteHost(
                    disk.toDomainXml(VirtType.QEMU), this::stage, n -> n, URI));
    assertTrue(e.getMessage().contains("/state/top.qcow2") && e.getMessage().contains(URI));
    VMTemplate share =
        VMTemplate.builder("vm3")
            .boot(BOOT)
            .share(new ShareAttachment(Path.of("/state/ws"), "workspace", false))
            .build();
    assertThrows(
        HypervisorException.class,
        () ->
            DomainXmlWriter.forRemoteHost(
                share.toDomainXml(VirtType.QEMU), this::stage, n -> n, URI));
    assertEquals(List.of(), staged, "nothing staged for a VM that cannot be made");
  }

  @Test
  void theHostsOwnFilesStayAsTheyAreWritableAndQcow2Included() {
    VMTemplate t =
        VMTemplate.builder("vm5")
            .boot(
                new BootSource(
                    Path.of("/pool/img-kernel"), Path.of("/cache/initramfs.img"), "console=ttyS0"))
            .disk(
                new DiskAttachment(
                    Path.of("/cache/pkgs.ext4"), DiskAttachment.Format.RAW, "vda", true, "/opt"))
            .disk(DiskAttachment.qcow2(Path.of("/pool/sbx.t.L.1.qcow2"), "vdb", "/workspace"))
            .build();
    String xml =
        DomainXmlWriter.forRemoteHost(
            t.toDomainXml(VirtType.QEMU),
            this::stage,
            n -> "/pool/" + n + ".log",
            URI,
            f -> f.startsWith("/pool/"),
            f -> f.startsWith("/pool/sbx."));
    assertEquals(List.of("/cache/initramfs.img", "/cache/pkgs.ext4"), staged);
    assertTrue(xml.contains("<kernel>/pool/img-kernel</kernel>"), xml);
    assertTrue(xml.contains("file=\"/pool/sbx.t.L.1.qcow2\""), xml);
    assertFalse(xml.contains("/cache/"), xml);
  }

  @Test
  void onlyOverlaysOfThePoolAreWritableInPlace() {
    assertTrue(HostVolumes.writableInPlace("sbx.t.L.1.qcow2"), "a sandbox's overlay");
    assertTrue(HostVolumes.writableInPlace("my-vm.data.qcow2"), "made by createOverlay");
    assertFalse(HostVolumes.writableInPlace("sbx.t.1.paused.save"), "a sandbox's memory");
    assertFalse(HostVolumes.writableInPlace("sbx.t.W.k.1.save"), "a warm image's memory");
    assertFalse(HostVolumes.writableInPlace("img-0123-base.qcow2"), "a staged image: shared");
    assertFalse(HostVolumes.writableInPlace("img-0123-pkgs.ext4"));
    assertFalse(HostVolumes.writableInPlace("clone.save"), "a memory image");
    assertFalse(HostVolumes.writableInPlace("vm1.console.log"));
  }

  /** Places {@code t} on a host whose pool is /pool, with its *.qcow2 files writable: refused. */
  private HypervisorException refusedWithPool(VMTemplate t) {
    return assertThrows(
        HypervisorException.class,
        () ->
            DomainXmlWriter.forRemoteHost(
                t.toDomainXml(VirtType.QEMU),
                this::stage,
                n -> n,
                URI,
                f -> f.startsWith("/pool/"),
                f -> HostVolumes.writableInPlace(f.substring("/pool/".length()))));
  }

  @Test
  void anOverlayOfTheHostIsAttachedAsQcow2Only() {
    VMTemplate t =
        VMTemplate.builder("vm9")
            .boot(BOOT)
            .disk(
                new DiskAttachment(
                    Path.of("/pool/data.qcow2"), DiskAttachment.Format.RAW, "vdb", false, "/data"))
            .build();
    HypervisorException e = refusedWithPool(t);
    assertTrue(e.getMessage().contains("must be attached as qcow2"), e.getMessage());
    assertEquals(List.of(), staged, "refused before anything is sent");
  }

  @Test
  void aSharedPoolFileIsNeverAWritableDisk() {
    VMTemplate t =
        VMTemplate.builder("vm8")
            .boot(BOOT)
            .disk(DiskAttachment.qcow2(Path.of("/pool/img-base.qcow2"), "vdb", "/workspace"))
            .build();
    HypervisorException e = refusedWithPool(t);
    assertTrue(e.getMessage().contains("/pool/img-base.qcow2"), e.getMessage());
  }

  @Test
  void aSavedRemoteDefinitionWithoutAChannelSocketIsRetargeted() {
    VMTemplate t = VMTemplate.builder("vm6").boot(BOOT).build();
    String placed =
        DomainXmlWriter.forRemoteHost(
            t.toDomainXml(VirtType.QEMU), this::stage, n -> "/pool/" + n + ".log", URI);
    // libvirt's saved definition has no <source> at all where the socket was left to it
    String saved = placed.replaceAll("<source mode=\"bind\"\\s*/>", "");
    VMTemplate copy = VMTemplate.builder("vm7").boot(BOOT).build();
    String again = DomainXmlWriter.retarget(saved, copy);
    assertTrue(again.contains("<name>vm7</name>"), again);
    String onHost =
        DomainXmlWriter.forRemoteHost(
            again,
            this::stage,
            n -> "/pool/" + n + ".log",
            URI,
            f -> f.startsWith("/pool/"),
            f -> false);
    assertEquals(Optional.of("/pool/vm7.log"), DomainXmlReader.consoleLogFile(onHost));
  }

  @Test
  void aReadOnlyQcow2DiskIsRefused() {
    VMTemplate t =
        VMTemplate.builder("vm4")
            .boot(BOOT)
            .disk(
                new DiskAttachment(
                    Path.of("/cache/base.qcow2"), DiskAttachment.Format.QCOW2, "vdb", true, ""))
            .build();
    HypervisorException e =
        assertThrows(
            HypervisorException.class,
            () ->
                DomainXmlWriter.forRemoteHost(
                    t.toDomainXml(VirtType.QEMU), this::stage, n -> n, URI));
    assertTrue(e.getMessage().contains("qcow2"), e.getMessage());
    assertEquals(List.of(), staged);
  }

  @Test
  void anUnreachableHostIsReportedWithinSecondsNamingItsAddress() {
    String uri = "qemu+tcp://127.0.0.1:1/system"; // nothing listens on port 1
    dev.agentvm.core.ConnectionException e =
        assertThrows(dev.agentvm.core.ConnectionException.class, () -> RemoteReach.check(uri));
    assertTrue(e.getMessage().contains("127.0.0.1:1"), e.getMessage());
    RemoteReach.check("qemu:///system"); // local: nothing to check
    assertEquals(
        java.util.OptionalInt.of(16514),
        RemoteReach.port(java.net.URI.create("qemu+tls://h/system")));
    assertEquals(
        java.util.OptionalInt.of(16509),
        RemoteReach.port(java.net.URI.create("qemu+tcp://h/system")));
    assertEquals(
        java.util.OptionalInt.of(2222),
        RemoteReach.port(java.net.URI.create("qemu+ssh://u@h:2222/system")));
    assertEquals(
        java.util.OptionalInt.empty(),
        RemoteReach.port(java.net.URI.create("qemu+ext://h/system")));
  }

  @Test
  void onlyUrisWithoutAHostAndWithALocalTransportAreLocal() {
    for (String local :
        List.of("qemu:///system", "qemu:///session", "qemu+unix:///system", "test:///default")) {
      assertTrue(HostVolumes.isLocal(local), local);
    }
    for (String remote :
        List.of(
            "qemu+ssh://h/system",
            "qemu+tls://h/system",
            "qemu+tcp://10.0.0.2/system",
            "qemu+ssh://localhost/system",
            "qemu+ssh://user@h:2222/system",
            "qemu+ext:///system",
            "not a uri")) {
      assertFalse(HostVolumes.isLocal(remote), remote);
    }
  }

  @Test
  void volumeNamesKeepOnlySafeCharacters() {
    assertEquals("initramfs.img", HostVolumes.safeName(Path.of("/a/initramfs.img")));
    assertEquals("a_b_c", HostVolumes.safeName(Path.of("/x/a b$c")));
    assertEquals(48, HostVolumes.safeName(Path.of("/x/" + "n".repeat(100))).length());
  }

  @Test
  void poolAndVolumeXmlNameTheirParts() {
    String pool = DomainXmlWriter.dirPool("agent-vm", "/var/lib/libvirt/agent-vm");
    assertTrue(pool.contains("type=\"dir\"") && pool.contains("/var/lib/libvirt/agent-vm"), pool);
    String vol = DomainXmlWriter.rawVolume("img-1", 1234, "0600");
    assertTrue(vol.contains(">1234<") && vol.contains("unit=\"bytes\""), vol);
    assertTrue(vol.contains("<allocation unit=\"bytes\">0</allocation>"), "sparse: " + vol);
    assertTrue(vol.contains("<mode>0600</mode>"), vol);
    assertEquals(
        "/srv/pool",
        DomainXmlReader.poolPath("<pool><target><path>/srv/pool</path></target></pool>"));
    assertThrows(
        IllegalArgumentException.class,
        () -> DomainXmlReader.poolPath("<pool><target><path>rel</path></target></pool>"));
  }

  @Test
  void theUploadStallSettingIsWholeSecondsOrAClearError() {
    assertEquals(HostVolumes.STALLED_UPLOAD, HostVolumes.stalledUpload(Optional.empty()));
    assertEquals(java.time.Duration.ofSeconds(3), HostVolumes.stalledUpload(Optional.of("3")));
    for (String bad : List.of("0", "-1", "1.5", "PT3S", "86401", "x\ny")) {
      IllegalArgumentException e =
          assertThrows(
              IllegalArgumentException.class, () -> HostVolumes.stalledUpload(Optional.of(bad)));
      assertTrue(e.getMessage().startsWith("agentvm.remote.uploadStallSeconds must be"), bad);
      assertFalse(e.getMessage().contains("\n"), "the value is cleaned for logs");
    }
  }
}
