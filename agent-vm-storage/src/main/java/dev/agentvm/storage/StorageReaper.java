package dev.agentvm.storage;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.Reaper;
import dev.agentvm.core.spi.DomainDescription;
import dev.agentvm.core.spi.OrphanReaper;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Removes workspaces and memory images whose owning process is gone, once no domain refers to them
 * (the {@link Reaper} has removed the orphaned VMs first; one it could not remove keeps its files).
 * Found by the Reaper through {@code META-INF/services}.
 */
public final class StorageReaper implements OrphanReaper {
  @Override
  public String kind() {
    return "workspaces, memory images and slot holders";
  }

  /**
   * For another host, it removes only the memory images kept there ({@link MemoryImage}, a record
   * in the image directory names the host) whose owner is gone.
   */
  @Override
  public boolean reapsRemoteHosts() {
    return true;
  }

  @Override
  public int reap(LibvirtConnection connection, List<String> failures) {
    if (!connection.backend().isLocal()) {
      return reapHostImages(connection, failures);
    }
    List<DomainDescription> definitions = new ArrayList<>();
    for (String name : connection.domainNames()) {
      try {
        connection.backend().lookup(name).ifPresent(d -> definitions.add(d.description()));
      } catch (RuntimeException e) {
        failures.add(
            name + ": cannot read its definition, so no workspace is removed: " + e.getMessage());
        return 0;
      }
    }
    int n = 0;
    for (String kind : List.of("workspaces", "images", "git-tasks")) {
      Path root = AgentVmPaths.stateRoot().resolve(kind);
      if (!Files.isDirectory(root)) {
        continue;
      }
      try (Stream<Path> dirs = Files.list(root)) {
        for (Path dir : dirs.filter(Files::isDirectory).toList()) {
          String owner = Owners.of(dir).orElse(null);
          if (owner == null || ProcessOwners.isAlive(owner)) {
            continue; // not ours to judge, or its owner still runs
          }
          if (kind.equals("images") && hasHostRecord(dir, failures)) {
            continue; // its memory is on another host: removed by a reap of that host
          }
          if (definitions.stream().anyMatch(x -> x.uses(dir))) {
            failures.add(dir + ": its owner is gone but a domain still uses it; kept");
            continue;
          }
          try {
            Trees.delete(dir);
            n++;
          } catch (IOException e) {
            failures.add(dir + ": could not be removed: " + e + "; delete it by hand");
          }
        }
      } catch (IOException e) {
        failures.add("reading " + root + ": " + e);
      }
    }
    return n + releaseSlots(definitions, failures);
  }

  private static boolean hasHostRecord(Path dir, List<String> failures) {
    try {
      return MemoryImage.hostRecord(dir).isPresent();
    } catch (IOException e) {
      failures.add(dir + ": " + e.getMessage() + "; kept");
      return true;
    }
  }

  /**
   * Removes the memory images on {@code connection}'s host whose owner is gone: the pool file, then
   * the image directory here that names it.
   */
  private static int reapHostImages(LibvirtConnection connection, List<String> failures) {
    Path root = AgentVmPaths.stateRoot().resolve("images");
    var storage = connection.hostStorage();
    if (storage.isEmpty() || !Files.isDirectory(root)) {
      return 0;
    }
    int n = 0;
    try (Stream<Path> dirs = Files.list(root)) {
      for (Path dir : dirs.filter(Files::isDirectory).toList()) {
        String owner = Owners.of(dir).orElse(null);
        if (owner == null || ProcessOwners.isAlive(owner)) {
          continue;
        }
        try {
          var record = MemoryImage.hostRecord(dir);
          if (record.isEmpty()
              || !AgentVmPaths.hostIdentity(record.get()[0])
                  .equals(AgentVmPaths.hostIdentity(connection.uri()))) {
            continue; // this machine's, or another host's
          }
          storage.get().delete(record.get()[1]);
          Trees.delete(dir);
          n++;
        } catch (IOException | RuntimeException e) {
          failures.add(dir + ": its memory image on " + connection.uri() + " not removed: " + e);
        }
      }
    } catch (IOException e) {
      failures.add("reading " + root + ": " + e);
    }
    return n;
  }

  /** Releases slots whose holder died, once no domain uses the slot's disk. */
  private static int releaseSlots(List<DomainDescription> definitions, List<String> failures) {
    Path root = PersistentSlots.atDefaultRoot().root();
    if (!Files.isDirectory(root)) {
      return 0;
    }
    int n = 0;
    try (Stream<Path> files = Files.list(root)) {
      for (Path holder :
          files
              .filter(p -> String.valueOf(p.getFileName()).endsWith(PersistentSlots.HOLDER))
              .toList()) {
        String owner = PersistentSlots.holderOf(holder)[0];
        if (owner.isEmpty() || ProcessOwners.isAlive(owner)) {
          continue;
        }
        String name = String.valueOf(holder.getFileName());
        Path disk =
            root.resolve(
                name.substring(0, name.length() - PersistentSlots.HOLDER.length()) + ".qcow2");
        if (definitions.stream().anyMatch(x -> x.uses(disk))) {
          failures.add(disk + ": its holder is gone but a domain still uses it; kept held");
          continue;
        }
        try {
          Files.deleteIfExists(holder);
          n++;
        } catch (IOException e) {
          failures.add(holder + ": could not be removed: " + e);
        }
      }
    } catch (IOException e) {
      failures.add("reading " + root + ": " + e);
    }
    return n;
  }
}
