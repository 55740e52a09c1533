package dev.agentvm.core;

import dev.agentvm.core.internal.libvirt.DomainXmlWriter;
import dev.agentvm.internal.AgentVmPaths;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.function.Consumer;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;
import org.w3c.dom.Document;

/**
 * A VM description that becomes libvirt domain XML (written in one place, the libvirt backend's
 * domain XML writer). Immutable; make one with {@link #builder(String)}.
 *
 * <pre>{@code
 * VMTemplate t = VMTemplate.builder("agentvm-demo")
 *     .resources(ResourceProfile.LIGHT)
 *     .boot(new BootSource(kernel, initrd, "console=ttyS0"))
 *     .build();
 * }</pre>
 *
 * <p>The XML is built as a DOM, so every value is escaped. {@link Builder#customizer} is an escape
 * hatch that sees the document before it is serialised, for options this class does not model.
 */
public final class VMTemplate {
  /** Namespace of agent-vm's {@code <metadata>} element in domain XML. */
  public static final String METADATA_NS = "https://agentvm.dev/xmlns/domain/1";

  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");

  private final String name;
  private final UUID uuid;
  private final ResourceProfile resources;
  private final BootSource boot;
  private final VirtType virtType;
  private final Path runDir;
  private final @Nullable String owner;
  private final UUID genid;
  private final List<DiskAttachment> disks;
  private final List<ShareAttachment> shares;
  private final List<NetworkAttachment> nics;
  private final @Nullable Consumer<Document> customizer;

  private VMTemplate(Builder b) {
    this.name = b.name;
    this.uuid = b.uuid != null ? b.uuid : UUID.randomUUID();
    this.genid = b.genid != null ? b.genid : UUID.randomUUID();
    this.disks = List.copyOf(b.disks);
    this.shares = List.copyOf(b.shares);
    this.nics = List.copyOf(b.nics);
    this.resources = b.resources;
    this.boot = Objects.requireNonNull(b.boot, "boot source is required");
    this.virtType = b.virtType;
    this.runDir = b.runDir != null ? b.runDir : AgentVmPaths.runDir(b.name);
    this.owner = b.owner;
    this.customizer = b.customizer;
  }

  public static Builder builder(String name) {
    return new Builder(name);
  }

  public Builder newBuilder() {
    Builder b = copyAs(name);
    b.uuid = uuid;
    b.genid = genid;
    b.runDir = runDir;
    b.owner = owner;
    b.disks.addAll(disks);
    b.shares.addAll(shares);
    b.nics.addAll(nics);
    return b;
  }

  /**
   * A builder for another VM like this one: same resources, boot source, virt type and customizer;
   * its own name, UUID, generation id and runtime directory; no disks, shares or NICs (they belong
   * to one VM and must be attached anew).
   */
  public Builder copyAs(String newName) {
    Builder b = new Builder(newName);
    b.resources = resources;
    b.boot = boot;
    b.virtType = virtType;
    b.customizer = customizer;
    return b;
  }

  public String name() {
    return name;
  }

  public UUID uuid() {
    return uuid;
  }

  public ResourceProfile resources() {
    return resources;
  }

  public BootSource boot() {
    return boot;
  }

  public VirtType virtType() {
    return virtType;
  }

  /**
   * The VM generation id the guest sees (libvirt {@code <genid>}): a new value tells the guest's
   * kernel it runs from a copy, and it reseeds its random number generator.
   */
  public UUID genid() {
    return genid;
  }

  public List<DiskAttachment> disks() {
    return disks;
  }

  public List<ShareAttachment> shares() {
    return shares;
  }

  /** NICs, in order; none means the VM has no network at all. */
  public List<NetworkAttachment> nics() {
    return nics;
  }

  /** Directory for this VM's runtime files. */
  public Path runDir() {
    return runDir;
  }

  /** The host end of the agent's virtio-serial channel (a UNIX socket QEMU listens on). */
  public Path agentSocket() {
    return runDir.resolve("agent.sock");
  }

  /** The guest's serial console, written by the hypervisor. */
  public Path consoleLog() {
    return runDir.resolve("console.log");
  }

  /**
   * The owner id recorded in the domain metadata ({@code pid@start}); {@link
   * LibvirtConnection#define} sets it to the defining process.
   */
  public Optional<String> owner() {
    return Optional.ofNullable(owner);
  }

  /**
   * Domain XML for this template (written by the libvirt backend's one domain XML writer).
   *
   * @param resolvedType the virt type to write; {@link VirtType#AUTO} must have been resolved
   * @throws IllegalStateException if {@code resolvedType} is AUTO
   */
  public String toDomainXml(VirtType resolvedType) {
    return DomainXmlWriter.write(this, resolvedType, customizer);
  }

  /** Builds {@link VMTemplate}s. Every setter validates its argument. */
  public static final class Builder {
    private final String name;
    private @Nullable UUID uuid;
    private ResourceProfile resources = ResourceProfile.LIGHT;
    private @Nullable BootSource boot;
    private VirtType virtType = VirtType.AUTO;
    private @Nullable Path runDir;
    private @Nullable String owner;
    private @Nullable UUID genid;
    private final List<DiskAttachment> disks = new ArrayList<>();
    private final List<ShareAttachment> shares = new ArrayList<>();
    private final List<NetworkAttachment> nics = new ArrayList<>();
    private @Nullable Consumer<Document> customizer;

    private Builder(String name) {
      if (name == null || !NAME.matcher(name).matches()) {
        throw new IllegalArgumentException(
            "name must be 1-64 characters of letters, digits, '_', '.', '-' starting with a letter or digit, was '"
                + name
                + "'");
      }
      this.name = name;
    }

    public Builder uuid(UUID uuid) {
      this.uuid = Objects.requireNonNull(uuid, "uuid");
      return this;
    }

    public Builder resources(ResourceProfile resources) {
      this.resources = Objects.requireNonNull(resources, "resources");
      return this;
    }

    public Builder boot(BootSource boot) {
      this.boot = Objects.requireNonNull(boot, "boot");
      return this;
    }

    /** The virt type; {@link VirtType#AUTO} by default. */
    public Builder virtType(VirtType virtType) {
      this.virtType = Objects.requireNonNull(virtType, "virtType");
      return this;
    }

    /** Overrides the runtime directory (default {@link AgentVmPaths#runDir(String)}). */
    public Builder runDir(Path runDir) {
      this.runDir = runDir.toAbsolutePath();
      return this;
    }

    /** Owner id recorded in the domain metadata, so that leftovers can be traced and reaped. */
    public Builder owner(String owner) {
      this.owner = owner;
      return this;
    }

    /** The VM generation id (default: a random one per template). */
    public Builder genid(UUID genid) {
      this.genid = Objects.requireNonNull(genid, "genid");
      return this;
    }

    /**
     * Attaches a disk.
     *
     * @throws IllegalArgumentException if another disk already uses its target device
     */
    public Builder disk(DiskAttachment disk) {
      Objects.requireNonNull(disk, "disk");
      for (DiskAttachment d : disks) {
        if (d.target().equals(disk.target())) {
          throw new IllegalArgumentException("disk target " + disk.target() + " is used twice");
        }
      }
      disks.add(disk);
      return this;
    }

    /**
     * Offers a host directory to the guest as a virtio-9p share.
     *
     * @throws IllegalArgumentException if another share already uses its tag
     */
    public Builder share(ShareAttachment share) {
      Objects.requireNonNull(share, "share");
      Set<String> tags = new HashSet<>();
      shares.forEach(s -> tags.add(s.tag()));
      if (!tags.add(share.tag())) {
        throw new IllegalArgumentException("share tag " + share.tag() + " is used twice");
      }
      shares.add(share);
      return this;
    }

    /**
     * Adds a NIC. Without one the VM has no network at all (the default, and the safest).
     *
     * @throws IllegalArgumentException if another NIC already has its MAC
     */
    public Builder nic(NetworkAttachment nic) {
      Objects.requireNonNull(nic, "nic");
      for (NetworkAttachment n : nics) {
        if (n.mac().equals(nic.mac())) {
          throw new IllegalArgumentException("MAC " + nic.mac() + " is used twice");
        }
      }
      nics.add(nic);
      return this;
    }

    /** Sees (and may change) the domain document before it is serialised. */
    public Builder customizer(Consumer<Document> customizer) {
      this.customizer = customizer;
      return this;
    }

    public VMTemplate build() {
      return new VMTemplate(this);
    }
  }
}
