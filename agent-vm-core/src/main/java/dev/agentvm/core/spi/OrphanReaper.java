package dev.agentvm.core.spi;

import dev.agentvm.core.LibvirtConnection;
import java.util.List;

/**
 * Removes resources of one kind whose owning process is gone (e.g. address reservations), run by
 * {@link dev.agentvm.core.Reaper} after it has reaped orphaned VMs. Modules above core provide them
 * through {@link java.util.ServiceLoader} ({@code META-INF/services}).
 */
public interface OrphanReaper {
  /** What it reaps, for the report: e.g. {@code address reservations}. */
  String kind();

  /**
   * Reaps what it finds.
   *
   * @param failures where to add one line per step that failed, saying what is left
   * @return how many resources were removed
   */
  int reap(LibvirtConnection connection, List<String> failures);

  /**
   * Whether it also runs for a connection to another host: only a reaper whose records are kept per
   * host and judged against that host's libvirt. False by default: this machine's resources are
   * never judged against another host's domains.
   */
  default boolean reapsRemoteHosts() {
    return false;
  }
}
