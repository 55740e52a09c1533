package dev.agentvm.storage;

import dev.agentvm.core.AgentVmPaths;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.Reaper;
import dev.agentvm.core.spi.OrphanReaper;
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
    return "workspaces and memory images";
  }

  @Override
  public int reap(LibvirtConnection connection, List<String> failures) {
    List<String> definitions = new ArrayList<>();
    for (String name : connection.domainNames()) {
      try {
        connection.backend().lookup(name).ifPresent(d -> definitions.add(d.xml()));
      } catch (RuntimeException e) {
        failures.add(
            name + ": cannot read its definition, so no workspace is removed: " + e.getMessage());
        return 0;
      }
    }
    int n = 0;
    for (String kind : List.of("workspaces", "images")) {
      Path root = AgentVmPaths.stateRoot().resolve(kind);
      if (!Files.isDirectory(root)) {
        continue;
      }
      try (Stream<Path> dirs = Files.list(root)) {
        for (Path dir : dirs.filter(Files::isDirectory).toList()) {
          String owner = Owners.of(dir).orElse(null);
          if (owner == null || Reaper.ownerAlive(owner)) {
            continue; // not ours to judge, or its owner still runs
          }
          String used = dir.toString() + "/";
          if (definitions.stream().anyMatch(x -> x.contains(used))) {
            failures.add(dir + ": its owner is gone but a domain still uses it; kept");
            continue;
          }
          try {
            MemoryImage.deleteTree(dir);
            n++;
          } catch (IOException e) {
            failures.add(dir + ": could not be removed: " + e + "; delete it by hand");
          }
        }
      } catch (IOException e) {
        failures.add("reading " + root + ": " + e);
      }
    }
    return n;
  }
}
