package dev.agentvm.core.spi;

import dev.agentvm.core.VMTemplate;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * What agent-vm reads from a domain's definition, read by the backend (callers never parse domain
 * XML themselves).
 *
 * @param name the domain's name
 * @param uuid the domain's UUID
 * @param owner the owner id in agent-vm's metadata ({@code pid@start}), or null if the domain has
 *     no agent-vm metadata (it is not ours: leave it alone); empty if the metadata names no owner
 * @param runDir the runtime directory in agent-vm's metadata, or null without metadata
 * @param template the template the domain was defined from, read back (the customizer's changes are
 *     not recovered), or null if the domain is not agent-vm's or its definition cannot be read as
 *     one
 * @param hostPaths every host file and directory the definition refers to: disk sources and their
 *     backing files, share directories, kernel and initrd, console log, channel sockets
 * @param networks the libvirt networks its NICs are attached to
 * @param filters the nwfilters its NICs reference
 * @param fingerprint a digest of the definition without agent-vm's owner metadata: equal for equal
 *     definitions, computed alike in every process
 */
public record DomainDescription(
    String name,
    String uuid,
    @Nullable String owner,
    @Nullable Path runDir,
    @Nullable VMTemplate template,
    List<Path> hostPaths,
    List<String> networks,
    List<String> filters,
    String fingerprint) {
  public DomainDescription {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(uuid, "uuid");
    Objects.requireNonNull(fingerprint, "fingerprint");
    hostPaths = List.copyOf(hostPaths);
    networks = List.copyOf(networks);
    filters = List.copyOf(filters);
  }

  /** The description of a domain agent-vm defined from {@code t} (for fake backends). */
  public static DomainDescription of(VMTemplate t, String fingerprint) {
    List<Path> paths = new java.util.ArrayList<>();
    paths.add(t.boot().kernel());
    paths.add(t.boot().initrd());
    paths.add(t.consoleLog());
    paths.add(t.agentSocket());
    t.disks().forEach(d -> paths.add(d.file()));
    t.shares().forEach(s -> paths.add(s.hostDir()));
    return new DomainDescription(
        t.name(),
        t.uuid().toString(),
        t.owner().orElse(""),
        t.runDir(),
        t,
        paths,
        t.nics().stream()
            .filter(n -> n.kind() == dev.agentvm.core.NetworkAttachment.Kind.NETWORK)
            .map(n -> n.source())
            .distinct()
            .toList(),
        t.nics().stream().map(n -> n.filter()).filter(f -> !f.isEmpty()).distinct().toList(),
        fingerprint);
  }

  /** {@link #template}, if there is one. */
  public Optional<VMTemplate> templateIfAny() {
    return Optional.ofNullable(template);
  }

  /**
   * Whether the definition refers to {@code path} or anything under it (its {@link #hostPaths} and
   * {@link #runDir}).
   */
  public boolean uses(Path path) {
    Path p = path.toAbsolutePath().normalize();
    return (runDir != null && runDir.toAbsolutePath().normalize().startsWith(p))
        || hostPaths.stream().anyMatch(h -> h.toAbsolutePath().normalize().startsWith(p));
  }
}
