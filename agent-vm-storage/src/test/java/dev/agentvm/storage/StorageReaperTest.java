package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.FakeHypervisor;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.TempStateDirectory;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.VirtType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The storage reaper's decisions against the fake hypervisor: what a domain's definition uses is
 * read from its typed description, not searched for in its XML.
 */
class StorageReaperTest {
  private static final String DEAD = "999999999@1970-01-01T00:00:00Z";
  @RegisterExtension final TempStateDirectory stateDir = new TempStateDirectory();
  private Path state;

  @BeforeEach
  void state() {
    state = stateDir.path();
  }

  private Path ownedDir(String kind, String name, String owner) throws Exception {
    Path dir = Files.createDirectories(state.resolve(kind).resolve(name));
    Files.writeString(dir.resolve(Owners.FILE), owner, StandardCharsets.UTF_8);
    return dir;
  }

  private Path holder(String slot, String owner) throws Exception {
    Path root = Files.createDirectories(PersistentSlots.atDefaultRoot().root());
    return Files.writeString(
        root.resolve(slot + PersistentSlots.HOLDER), owner + "\ntask\n", StandardCharsets.UTF_8);
  }

  @Test
  void removesWhatIsOrphanedAndUnusedAndKeepsWhatADomainUses() throws Exception {
    Path unused = ownedDir("workspaces", "unused", DEAD);
    Path shared = ownedDir("workspaces", "shared", DEAD);
    Path live = ownedDir("workspaces", "live", LibvirtConnection.processOwner());
    Path image = ownedDir("images", "img", DEAD);
    Path freeHolder = holder("free", DEAD);
    Path usedHolder = holder("used", DEAD);
    Path usedDisk = PersistentSlots.atDefaultRoot().root().resolve("used.qcow2");

    FakeHypervisor hv = new FakeHypervisor();
    hv.add(
        VMTemplate.builder("user")
            .boot(new BootSource(Path.of("/k"), Path.of("/i"), ""))
            .runDir(state.resolve("run/user"))
            .share(new ShareAttachment(shared.resolve("input"), "in", true))
            .disk(DiskAttachment.qcow2(usedDisk, "vda", ""))
            .build(),
        VirtType.QEMU);
    hv.addForeign("stranger");

    List<String> failures = new ArrayList<>();
    try (LibvirtConnection conn = LibvirtConnection.using(hv)) {
      int removed = new StorageReaper().reap(conn, failures);
      assertEquals(3, removed, failures.toString());
    }
    assertFalse(Files.exists(unused));
    assertFalse(Files.exists(image));
    assertFalse(Files.exists(freeHolder));
    assertTrue(Files.exists(shared), "a domain still uses it");
    assertTrue(Files.exists(live), "its owner still runs");
    assertTrue(Files.exists(usedHolder), "a domain still uses the slot's disk");
    assertEquals(2, failures.size(), failures.toString());
    assertTrue(failures.get(0).startsWith(shared.toString()), failures.get(0));
    assertTrue(failures.get(1).startsWith(usedDisk.toString()), failures.get(1));
  }

  @Test
  void anImageOnAnotherHostIsLeftToThatHostsReap() throws Exception {
    Path far = ownedDir("images", "far", DEAD);
    Files.writeString(
        far.resolve(MemoryImage.HOST_RECORD), "uri=qemu+tcp\\://h/system\nfile=mi.1.save\n");
    Path broken = ownedDir("images", "broken", DEAD);
    Files.writeString(broken.resolve(MemoryImage.HOST_RECORD), "file=elsewhere\n");
    Path here = ownedDir("images", "here", DEAD);
    List<String> failures = new ArrayList<>();
    try (LibvirtConnection conn = LibvirtConnection.using(new FakeHypervisor())) {
      assertEquals(1, new StorageReaper().reap(conn, failures), failures.toString());
    }
    assertFalse(Files.exists(here));
    assertTrue(Files.exists(far), "its memory is on that host: removed by reaping it");
    assertTrue(Files.exists(broken), "a record that names no host image: kept, and said");
    assertEquals(1, failures.size(), failures.toString());
    assertTrue(failures.get(0).contains("names no host image"), failures.get(0));
  }

  /** A fake remote host whose pool records what is deleted from it. */
  private static final class FarHost extends FakeHypervisor {
    final List<String> deleted = new ArrayList<>();

    @Override
    public String uri() {
      return "qemu+tcp://h/system";
    }

    @Override
    public boolean isLocal() {
      return false;
    }

    @Override
    public java.util.Optional<dev.agentvm.core.HostStorage> hostStorage() {
      return java.util.Optional.of(
          new dev.agentvm.core.HostStorage() {
            @Override
            public Path path(String name) {
              return Path.of("/pool", name);
            }

            @Override
            public Path stage(Path local) {
              throw new UnsupportedOperationException();
            }

            @Override
            public Path createOverlay(String name, Path backing, long capacityBytes) {
              throw new UnsupportedOperationException();
            }

            @Override
            public void delete(String name) {
              if (name.contains("unreachable")) {
                throw new dev.agentvm.core.HypervisorException("host went away", null);
              }
              deleted.add(name);
            }

            @Override
            public List<String> names(String prefix) {
              return List.of();
            }
          });
    }
  }

  private Path hostImage(String name, String owner, String uri, String file) throws Exception {
    Path dir = ownedDir("images", name, owner);
    java.util.Properties p = new java.util.Properties();
    p.setProperty("uri", uri);
    p.setProperty("file", file);
    try (var out = Files.newOutputStream(dir.resolve(MemoryImage.HOST_RECORD))) {
      p.store(out, null);
    }
    return dir;
  }

  @Test
  void aReapOfAHostRemovesOnlyItsOwnImagesOfDeadProcesses() throws Exception {
    // the same host under another spelling of its URI
    Path mine = hostImage("mine", DEAD, "qemu+tcp://H/system?keepalive=1", "mi.1.save");
    Path alive =
        hostImage("alive", LibvirtConnection.processOwner(), "qemu+tcp://h/system", "mi.2.save");
    Path other = hostImage("other", DEAD, "qemu+tcp://g/system", "mi.3.save");
    Path stuck = hostImage("stuck", DEAD, "qemu+tcp://h/system", "mi.unreachable.save");
    Path local = ownedDir("images", "local", DEAD);
    Path workspace = ownedDir("workspaces", "ws", DEAD);
    FarHost far = new FarHost();
    List<String> failures = new ArrayList<>();
    try (LibvirtConnection conn = LibvirtConnection.using(far)) {
      assertEquals(1, new StorageReaper().reap(conn, failures), failures.toString());
    }
    assertEquals(List.of("mi.1.save"), far.deleted);
    assertFalse(Files.exists(mine));
    assertTrue(Files.exists(alive), "its owner runs");
    assertTrue(Files.exists(other), "another host's");
    assertTrue(Files.exists(stuck), "its file could not be deleted: the record stays");
    assertTrue(Files.exists(local), "this machine's: judged against this machine only");
    assertTrue(Files.exists(workspace));
    assertEquals(1, failures.size(), failures.toString());
    assertTrue(failures.get(0).contains("host went away"), failures.get(0));
  }
}
