package dev.agentvm.core;

import dev.agentvm.core.spi.DomainDescription;
import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.internal.ProcessOwners;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds VMs whose owning process is gone (a JVM killed before it could clean up) and removes them:
 * graceful stop with a deadline, then forced, undefine, runtime directory deleted. Domains without
 * agent-vm's metadata, or whose owner still runs, are never touched.
 *
 * <pre>{@code
 * Reaper.Report r = Reaper.reapOrphans(connection, Duration.ofSeconds(10));
 * }</pre>
 */
public final class Reaper {
  private static final Logger LOG = LoggerFactory.getLogger(Reaper.class);

  /**
   * What a reaping pass did.
   *
   * @param examined domains looked at
   * @param orphans domains whose owner was gone
   * @param stoppedGracefully orphans that powered off within the grace period
   * @param stoppedForcibly orphans destroyed after it
   * @param removed orphans undefined with their runtime directory deleted
   * @param failures one line per step that failed, saying what is left and what to do
   * @param others other resources removed by {@link dev.agentvm.core.spi.OrphanReaper}s, by kind
   */
  public record Report(
      int examined,
      int orphans,
      int stoppedGracefully,
      int stoppedForcibly,
      int removed,
      List<String> failures,
      java.util.Map<String, Integer> others) {
    public Report {
      failures = List.copyOf(failures); // no copy when it is one already
      others = Map.copyOf(others);
    }
  }

  private Reaper() {}

  /**
   * The library's own reapers, by class name: found even where {@link java.util.ServiceLoader} does
   * not see them (a user's shaded jar that kept one module's {@code META-INF/services} file and
   * dropped the others').
   */
  static final List<String> OWN_REAPERS =
      List.of("dev.agentvm.storage.StorageReaper", "dev.agentvm.network.ReservationReaper");

  /** Every reaper: those {@link java.util.ServiceLoader} finds, and the library's own present. */
  @edu.umd.cs.findbugs.annotations.SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "class names from our own constant list; a JDK exception about them")
  static List<dev.agentvm.core.spi.OrphanReaper> reapers() {
    Map<String, dev.agentvm.core.spi.OrphanReaper> byClass = new java.util.LinkedHashMap<>();
    for (dev.agentvm.core.spi.OrphanReaper r :
        java.util.ServiceLoader.load(dev.agentvm.core.spi.OrphanReaper.class)) {
      byClass.putIfAbsent(r.getClass().getName(), r);
    }
    for (String name : OWN_REAPERS) {
      if (byClass.containsKey(name)) {
        continue;
      }
      try {
        Class<?> c = Class.forName(name, true, Reaper.class.getClassLoader());
        byClass.put(
            name,
            c.asSubclass(dev.agentvm.core.spi.OrphanReaper.class)
                .getDeclaredConstructor()
                .newInstance());
        LOG.debug("reaper {} found by name, not through META-INF/services", name);
      } catch (ClassNotFoundException absent) {
        // that module is not on the class path: nothing of its kind to reap
      } catch (ReflectiveOperationException | ClassCastException e) {
        LOG.warn("reaper {} could not be made: {}", name, e.toString());
      }
    }
    return List.copyOf(byClass.values());
  }

  /** The file in a VM's runtime directory that names the process that made it. */
  static final String OWNER_FILE = ".owner";

  /**
   * Removes runtime directories under the state root that no domain uses and whose owner process is
   * gone: what a process leaves when it dies between making the directory and defining (or after
   * undefining) its domain. A directory that names no owner, or a live one, is left alone.
   */
  static int reapRunDirs(LibvirtConnection conn, List<String> failures) {
    Path root = dev.agentvm.internal.AgentVmPaths.stateRoot().resolve("run");
    if (!java.nio.file.Files.isDirectory(root)) {
      return 0;
    }
    java.util.Set<String> domains = new java.util.HashSet<>(conn.domainNames());
    int removed = 0;
    try (java.nio.file.DirectoryStream<Path> s = java.nio.file.Files.newDirectoryStream(root)) {
      for (Path dir : s) {
        String name = String.valueOf(dir.getFileName());
        Path ownerFile = dir.resolve(OWNER_FILE);
        if (domains.contains(name) || !java.nio.file.Files.isRegularFile(ownerFile)) {
          continue;
        }
        String owner;
        try {
          owner = java.nio.file.Files.readString(ownerFile).trim();
        } catch (java.io.IOException e) {
          continue; // removed meanwhile
        }
        if (owner.isEmpty() || ProcessOwners.isAlive(owner) || conn.domainNames().contains(name)) {
          continue;
        }
        try {
          dev.agentvm.internal.Trees.delete(dir);
          removed++;
        } catch (java.io.IOException e) {
          failures.add("runtime directory " + dir + ": not removed: " + e.getMessage());
        }
      }
    } catch (java.io.IOException e) {
      failures.add("runtime directories under " + root + ": cannot list: " + e.getMessage());
    }
    return removed;
  }

  /**
   * Reaps every orphan on this connection; each failed step is reported, never hides the others.
   */
  public static Report reapOrphans(LibvirtConnection conn, Duration grace) {
    int examined = 0;
    int orphans = 0;
    int graceful = 0;
    int forced = 0;
    int removed = 0;
    List<String> failures = new ArrayList<>();
    boolean local = conn.backend().isLocal();
    for (String name : conn.domainNames()) {
      examined++;
      Optional<DomainHandle> d;
      DomainDescription def;
      try {
        d = conn.backend().lookup(name);
        if (d.isEmpty()) {
          continue; // gone meanwhile
        }
        def = d.get().description();
      } catch (AgentVmException | IllegalArgumentException e) {
        failures.add(name + ": cannot read its definition: " + e.getMessage());
        continue;
      }
      String owner = def.owner();
      Path runDir = def.runDir();
      if (owner == null || runDir == null || ProcessOwners.isAlive(owner)) {
        continue;
      }
      if (!local && !ProcessOwners.namesThisMachine(owner)) {
        continue; // a shared host: only owners that name this machine are ours to judge
      }
      orphans++;
      LOG.info("reaping {}: its owner {} is gone", name, owner);
      VMTemplate template = def.template();
      if (template == null) {
        failures.add(
            name
                + ": its owner is gone but its definition no longer reads as agent-vm's; try: virsh"
                + " destroy "
                + name
                + ", virsh undefine "
                + name
                + ", then delete "
                + runDir);
        continue;
      }
      VM vm = VM.adopt(conn, d.get(), template);
      try {
        switch (vm.shutdown(grace)) {
          case GRACEFUL -> graceful++;
          case FORCED -> forced++;
          case ALREADY_STOPPED -> {}
        }
      } catch (AgentVmException e) {
        failures.add(name + ": stop failed: " + e.getMessage() + "; try: virsh destroy " + name);
      }
      try {
        vm.close();
        removed++;
      } catch (AgentVmException e) {
        failures.add(
            name
                + ": not removed: "
                + e.getMessage()
                + "; try: virsh undefine "
                + name
                + ", then delete "
                + runDir);
      }
    }
    java.util.Map<String, Integer> others = new java.util.LinkedHashMap<>();
    // runtime directories and workspaces are this machine's: judged against its own libvirt,
    // never against another host's domains; only reapers of per-host records run for another host
    if (local) {
      int dirs = reapRunDirs(conn, failures);
      if (dirs > 0) {
        others.put("runtime directories", dirs);
        LOG.info("reaper: removed {} runtime directories of processes that are gone", dirs);
      }
    }
    for (dev.agentvm.core.spi.OrphanReaper extra : reapers()) {
      if (!local && !extra.reapsRemoteHosts()) {
        continue;
      }
      try {
        int n = extra.reap(conn, failures);
        others.merge(extra.kind(), n, Integer::sum);
        if (n > 0) {
          LOG.info("reaper: removed {} {} of processes that are gone", n, extra.kind());
        }
      } catch (RuntimeException e) {
        failures.add(extra.kind() + ": reaping failed: " + e.getMessage());
      }
    }
    return report(examined, orphans, graceful, forced, removed, failures, others);
  }

  private static Report report(
      int examined,
      int orphans,
      int graceful,
      int forced,
      int removed,
      List<String> failures,
      Map<String, Integer> others) {
    Report r =
        new Report(
            examined,
            orphans,
            graceful,
            forced,
            removed,
            List.copyOf(failures),
            Map.copyOf(others));
    if (orphans > 0 || !failures.isEmpty()) {
      LOG.info(
          "reaper: {} domains examined, {} orphans, {} stopped gracefully, {} forcibly, {} removed, {} failures",
          examined,
          orphans,
          graceful,
          forced,
          removed,
          failures.size());
    }
    failures.forEach(f -> LOG.warn("reaper: {}", f));
    return r;
  }
}
