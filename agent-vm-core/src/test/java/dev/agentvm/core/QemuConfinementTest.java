package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.internal.libvirt.DomainXmlWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class QemuConfinementTest {

  @Test
  void warningsSayWhatIsMissing() {
    QemuConfinement good =
        new QemuConfinement(
            "qemu:///system", List.of("apparmor", "dac"), "+64055:+64055", Optional.of(true), true);
    assertTrue(good.mandatoryAccessControl());
    assertEquals(List.of(), good.warnings());

    QemuConfinement bare =
        new QemuConfinement("qemu:///system", List.of(), "+0:+0", Optional.of(false), false);
    List<String> w = bare.warnings();
    assertEquals(4, w.size(), w.toString());
    assertTrue(w.get(0).contains("runs as root"), w.toString());
    assertTrue(w.get(1).contains("memory hard limit"), w.toString());
    assertTrue(w.get(2).contains("seccomp"), w.toString());
    assertTrue(w.get(3).contains("libvirt offers none"), w.toString());

    QemuConfinement session =
        new QemuConfinement("qemu:///session", List.of("selinux"), "", Optional.empty(), true);
    assertTrue(session.sessionMode());
    assertEquals(1, session.warnings().size());
    assertTrue(session.warnings().get(0).contains("full rights"));
  }

  @Test
  void qemuConfSaysWhetherSeccompIsOn(@TempDir Path dir) throws Exception {
    Path conf = dir.resolve("qemu.conf");
    assertEquals(Optional.empty(), QemuConfinement.seccompFromQemuConf("qemu:///system", conf));
    Files.writeString(conf, "# seccomp_sandbox = 0\nuser = \"qemu\"\n");
    assertEquals(Optional.of(true), QemuConfinement.seccompFromQemuConf("qemu:///system", conf));
    Files.writeString(conf, "seccomp_sandbox = 0\n");
    assertEquals(Optional.of(false), QemuConfinement.seccompFromQemuConf("qemu:///system", conf));
    Files.writeString(conf, "seccomp_sandbox=1\n");
    assertEquals(Optional.of(true), QemuConfinement.seccompFromQemuConf("qemu:///system", conf));
    assertEquals(
        Optional.empty(), QemuConfinement.seccompFromQemuConf("qemu+ssh://h/system", conf));
  }

  @Test
  void theMemoryHardLimitFollowsTheSetting() {
    assertTrue(QemuConfinement.memoryHardLimitAllowed("qemu:///system", "on"));
    assertFalse(QemuConfinement.memoryHardLimitAllowed("qemu:///system", "off"));
    assertTrue(QemuConfinement.memoryHardLimitAllowed("qemu+tcp://remote/system", "auto"));
    String xml =
        VMTemplate.builder("m")
            .boot(new BootSource(Path.of("/k"), Path.of("/i"), ""))
            .build()
            .toDomainXml(VirtType.QEMU);
    assertTrue(xml.contains("<memtune>"), xml);
    String without = DomainXmlWriter.withoutMemoryHardLimit(xml);
    assertFalse(without.contains("memtune"), without);
    assertTrue(without.contains("<global_quota>"), without);
  }

  @Test
  void theSandboxFlagIsReadFromTheCommandLine() {
    assertTrue(QemuConfinement.sandboxOn(List.of("qemu", "-sandbox", "on,obsolete=deny")));
    assertFalse(QemuConfinement.sandboxOn(List.of("qemu", "-sandbox", "off")));
    assertFalse(QemuConfinement.sandboxOn(List.of("qemu", "-name", "guest=x")));
    assertEquals(Optional.empty(), QemuConfinement.seccompSandbox("agentvm-no-such-domain"));
  }
}
