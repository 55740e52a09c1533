package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Runtime directories with no domain: a process that died between making the directory and defining
 * its domain left one. The reaper removes those of dead owners, and nothing else.
 */
class RunDirReaperTest {
  private static final String DEAD = "999999999@1970-01-01T00:00:00Z";

  @RegisterExtension final TempStateDirectory stateDir = new TempStateDirectory();
  private Path state;

  @BeforeEach
  void state() {
    state = stateDir.path();
  }

  private Path runDir(String name, String owner) throws Exception {
    Path d = Files.createDirectories(state.resolve("run").resolve(name));
    Files.writeString(d.resolve("console.log"), "");
    if (owner != null) {
      Files.writeString(d.resolve(Reaper.OWNER_FILE), owner);
    }
    return d;
  }

  @Test
  void aDeadOwnersDirectoryWithoutADomainGoesTheRestStays() throws Exception {
    FakeHypervisor hv = new FakeHypervisor();
    Path orphan = runDir("agentvm-x-orphan", DEAD);
    Path mine = runDir("agentvm-x-mine", LibvirtConnection.processOwner());
    Path unknown = runDir("agentvm-x-unknown", null);
    Path withDomain = runDir("agentvm-x-defined", DEAD);
    hv.add(
        VMTemplate.builder("agentvm-x-defined")
            .boot(new BootSource(Path.of("/k"), Path.of("/i"), ""))
            .runDir(withDomain)
            .owner(LibvirtConnection.processOwner())
            .build(),
        VirtType.QEMU);
    try (LibvirtConnection conn = LibvirtConnection.using(hv)) {
      Reaper.Report r = Reaper.reapOrphans(conn, Duration.ofMillis(100));
      assertEquals(1, r.others().get("runtime directories"), r.toString());
      assertFalse(Files.exists(orphan), "a dead process's directory with no domain");
      assertTrue(Files.exists(mine), "a live process's directory (its domain may be on its way)");
      assertTrue(Files.exists(unknown), "a directory that names no owner is not ours to judge");
      assertTrue(Files.exists(withDomain), "its domain's, reaped with the domain if at all");
    }
  }

  @Test
  void newRuntimeDirectoriesNameTheirOwner() throws Exception {
    FakeHypervisor hv = new FakeHypervisor();
    try (LibvirtConnection conn = LibvirtConnection.using(hv);
        VM vm =
            conn.define(
                VMTemplate.builder("agentvm-x-new")
                    .boot(new BootSource(Path.of("/k"), Path.of("/i"), ""))
                    .runDir(state.resolve("run/agentvm-x-new"))
                    .build())) {
      assertEquals(
          LibvirtConnection.processOwner(),
          Files.readString(vm.template().runDir().resolve(Reaper.OWNER_FILE)));
    }
  }
}
