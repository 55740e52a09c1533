package dev.agentvm.core.internal.libvirt;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import dev.agentvm.core.HypervisorException;
import dev.agentvm.core.NoSuchVmException;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.internal.FileLocks;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.libvirt.DomainSnapshot;

/**
 * A domain's state kept for later: internal snapshots (in its qcow2 disks) and memory images
 * ({@code virDomainSaveFlags} / {@code virDomainRestoreFlags}, bound in {@link LibvirtNative}).
 */
final class LibvirtSnapshots {
  private final LibvirtSession session;

  LibvirtSnapshots(LibvirtSession session) {
    this.session = session;
  }

  void create(LibvirtDomain d, String name, String description) {
    String xml = DomainXmlWriter.snapshot(name, description);
    session.run("snapshot " + d.name(), () -> d.dom().snapshotCreateXML(xml).free());
  }

  List<String> names(LibvirtDomain d) {
    return List.of(
        session.call("list snapshots of " + d.name(), () -> d.dom().snapshotListNames()));
  }

  void revert(LibvirtDomain d, String snapshot) {
    session.run(
        "revert " + d.name() + " to snapshot " + snapshot,
        () -> {
          DomainSnapshot s = d.dom().snapshotLookupByName(snapshot);
          try {
            d.dom().revertToSnapshot(s);
          } finally {
            s.free();
          }
        });
  }

  void delete(LibvirtDomain d, String snapshot) {
    session.run(
        "delete snapshot " + snapshot + " of " + d.name(),
        () -> {
          DomainSnapshot s = d.dom().snapshotLookupByName(snapshot);
          try {
            s.delete(0);
          } finally {
            s.free();
          }
        });
  }

  /** Saves a running domain's memory and device state to {@code file} and stops it. */
  void saveMemory(LibvirtDomain d, Path file) {
    LibvirtNative lib = LibvirtNative.get();
    Pointer p = lib.virDomainLookupByUUIDString(session.nativeConnection(), d.uuid());
    if (p == null) {
      throw new NoSuchVmException("save " + d.name() + ": " + lib.virGetLastErrorMessage(), null);
    }
    try {
      if (lib.virDomainSaveFlags(p, file.toString(), null, 0) != 0) {
        throw new HypervisorException(
            "save " + d.name() + " to " + file + " failed: " + lib.virGetLastErrorMessage(), null);
      }
    } finally {
      lib.virDomainFree(p);
    }
  }

  /**
   * Starts a domain from a memory image under {@code identity} and returns its name. The saved
   * definition, retargeted ({@link DomainXmlWriter#retarget}), is written into the image's header
   * (see {@link SaveImageHeader}) rather than passed to libvirt, which would refuse another UUID. A
   * file lock alone would not do: the JVM holds file locks for the whole process, so threads need
   * their own lock too ({@link FileLocks}).
   */
  String restore(Path file, VMTemplate identity) {
    LibvirtNative lib = LibvirtNative.get();
    Path key = file.toAbsolutePath().normalize();
    Path lockFile = key.resolveSibling(key.getFileName() + ".lock");
    try {
      return FileLocks.withLock(
          lockFile,
          () -> {
            String saved = savedImageXml(key);
            String edited = DomainXmlWriter.retarget(saved, identity);
            if (!edited.equals(saved)) {
              SaveImageHeader.rewriteXml(key, edited);
            }
            if (lib.virDomainRestoreFlags(session.nativeConnection(), key.toString(), null, 0)
                != 0) {
              throw new HypervisorException(
                  "restore from " + key + " failed: " + lib.virGetLastErrorMessage(), null);
            }
            return DomainXmlReader.name(edited);
          });
    } catch (IOException e) {
      throw new HypervisorException("locking " + lockFile + ": " + e, e);
    }
  }

  /** Restores of one remote image take turns: a lock per image path's hash, of a fixed few. */
  private final Object[] hostRestoreLocks = newLocks(32);

  private static Object[] newLocks(int n) {
    Object[] locks = new Object[n];
    for (int i = 0; i < n; i++) {
      locks[i] = new Object();
    }
    return locks;
  }

  /**
   * Like {@link #restore}, for a memory image in a remote host's pool: the retargeted definition is
   * placed on the host (images not there yet staged, the console log in the pool) and written into
   * the image's header through a volume download and upload. Restores of one image take turns
   * within this process; clients on other machines do not share one image (a sandbox's memory
   * images are its own). A restore that fails removes the console log it made.
   */
  String restoreOnHost(Path file, VMTemplate identity, HostVolumes host) {
    LibvirtNative lib = LibvirtNative.get();
    String path = file.toString();
    if (host.poolName(path).isEmpty()) {
      throw new dev.agentvm.core.SnapshotException(
          path + " is not in the agent-vm pool of " + session.uri() + ": nothing to restore");
    }
    Object lock = hostRestoreLocks[Math.floorMod(path.hashCode(), hostRestoreLocks.length)];
    synchronized (lock) {
      String saved = savedImageXml(file);
      String edited = host.placeOnHost(DomainXmlWriter.retarget(saved, identity));
      String name = DomainXmlReader.name(edited);
      boolean restored = false;
      try {
        if (!edited.equals(saved)) {
          host.rewriteSavedXml(path, edited);
        }
        if (lib.virDomainRestoreFlags(session.nativeConnection(), path, null, 0) != 0) {
          throw new HypervisorException(
              "restore from "
                  + path
                  + " on "
                  + session.uri()
                  + " failed: "
                  + lib.virGetLastErrorMessage(),
              null);
        }
        restored = true;
      } finally {
        if (!restored) {
          host.deleteVmFiles(name);
        }
      }
      return name;
    }
  }

  /** The domain XML stored in a memory image. */
  String savedImageXml(Path file) {
    LibvirtNative lib = LibvirtNative.get();
    Pointer p = lib.virDomainSaveImageGetXMLDesc(session.nativeConnection(), file.toString(), 0);
    if (p == null) {
      throw new HypervisorException(
          "read XML of saved image " + file + ": " + lib.virGetLastErrorMessage(), null);
    }
    try {
      return p.getString(0, "UTF-8");
    } finally {
      Native.free(Pointer.nativeValue(p));
    }
  }
}
