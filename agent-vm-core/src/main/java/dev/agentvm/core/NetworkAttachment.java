package dev.agentvm.core;

import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A virtio NIC: on a libvirt network or on an existing host bridge, with a fixed MAC and optionally
 * a libvirt nwfilter (with its parameters, e.g. {@code IP}) applied to its traffic.
 *
 * @param kind where it is attached
 * @param source the libvirt network's name, or the bridge's
 * @param mac the MAC address, {@code xx:xx:xx:xx:xx:xx} in lower case
 * @param filter the nwfilter's name, or empty for none
 * @param filterParameters parameters of the filter
 */
public record NetworkAttachment(
    Kind kind, String source, String mac, String filter, Map<String, String> filterParameters) {
  private static final Pattern MAC = Pattern.compile("([0-9a-f]{2}:){5}[0-9a-f]{2}");
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_.-]{1,64}");

  /** Where a NIC is attached. */
  public enum Kind {
    /** A libvirt network ({@code <interface type='network'>}). */
    NETWORK,
    /** An existing host bridge ({@code <interface type='bridge'>}). */
    BRIDGE
  }

  public NetworkAttachment {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(source, "source");
    Objects.requireNonNull(mac, "mac");
    Objects.requireNonNull(filter, "filter");
    filterParameters = Map.copyOf(filterParameters);
    if (!NAME.matcher(source).matches()) {
      throw new IllegalArgumentException(
          "source must be 1-64 of [A-Za-z0-9_.-], was '" + source + "'");
    }
    if (!MAC.matcher(mac).matches()) {
      throw new IllegalArgumentException("mac must be like 02:a6:00:00:00:01, was '" + mac + "'");
    }
    if (!filter.isEmpty() && !NAME.matcher(filter).matches()) {
      throw new IllegalArgumentException(
          "filter must be 1-64 of [A-Za-z0-9_.-], was '" + filter + "'");
    }
  }
}
