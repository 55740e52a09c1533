package dev.agentvm.network;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.spi.OrphanReaper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * Reclaims the address reservations of processes that are gone, on every agent-vm network of the
 * connection's host that has bookkeeping in the state directory ({@link IpAllocator#stateDir}).
 * Found by {@link dev.agentvm.core.Reaper} through {@code META-INF/services}.
 */
public final class ReservationReaper implements OrphanReaper {
  @Override
  public String kind() {
    return "address reservations";
  }

  /** Its records are per host ({@link IpAllocator#stateDir}): it reaps another host's too. */
  @Override
  public boolean reapsRemoteHosts() {
    return true;
  }

  @Override
  public int reap(LibvirtConnection connection, List<String> failures) {
    Path dir = IpAllocator.stateDir(connection);
    if (!Files.isDirectory(dir)) {
      return 0;
    }
    int n = 0;
    try (Stream<Path> files = Files.list(dir)) {
      for (Path f : files.filter(p -> p.toString().endsWith(".owners.json")).toList()) {
        String name = String.valueOf(f.getFileName()).replace(".owners.json", "");
        try {
          var spec = new Networks(connection).read(name);
          if (spec.isEmpty()) {
            // the network is gone, and its reservations with it: only the bookkeeping is left
            Files.deleteIfExists(f);
            Files.deleteIfExists(dir.resolve(name + ".lock"));
            continue;
          }
          if (spec.get().subnet() == null) {
            continue;
          }
          n += new IpAllocator(connection, spec.get(), dir).reclaim();
        } catch (RuntimeException | IOException e) {
          failures.add("network " + name + ": reclaiming reservations failed: " + e.getMessage());
        }
      }
    } catch (IOException e) {
      failures.add("reading " + dir + ": " + e);
    }
    return n;
  }
}
