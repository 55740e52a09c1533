package dev.agentvm.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.agentvm.core.AgentVmException;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.NoSuchVmException;
import dev.agentvm.core.SnapshotException;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMState;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates, lists, restores and deletes snapshots of one VM. Snapshots are libvirt internal
 * snapshots, stored in the VM's qcow2 disks: a running VM's snapshot holds its memory and device
 * state too ({@link SnapshotInfo.Kind#FULL}), a stopped VM's only its disks ({@link
 * SnapshotInfo.Kind#DISK}). Each snapshot's metadata is a JSON file in the VM's runtime directory
 * ({@code snapshots/<name>.json}), written atomically and read back by any later {@code
 * SnapshotManager} of the same VM, also in another JVM. Thread-safe.
 *
 * <pre>{@code
 * SnapshotManager snapshots = SnapshotManager.of(vm);
 * snapshots.create("clean", "agent ready, nothing run yet");
 * // ... run untrusted code ...
 * snapshots.restore("clean", Duration.ofSeconds(30));     // back to the exact state, agent reconnected
 * }</pre>
 *
 * <p>Needs a VM with at least one qcow2 disk (a diskless VM has nothing to store the snapshot in:
 * use {@link MemoryImage} for those). A running VM cannot be snapshotted while a virtio-9p share is
 * mounted in it.
 */
public final class SnapshotManager {
  private static final Logger LOG = LoggerFactory.getLogger(SnapshotManager.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");

  private final VM vm;
  private final Path dir;

  private SnapshotManager(VM vm) {
    this.vm = vm;
    this.dir = vm.template().runDir().resolve("snapshots");
  }

  /** The snapshot manager of a VM; cheap, holds no resources. */
  public static SnapshotManager of(VM vm) {
    return new SnapshotManager(vm);
  }

  /**
   * Takes a snapshot: FULL if the VM runs or is paused, DISK if it is stopped.
   *
   * @throws IllegalArgumentException if the name is not 1-64 of {@code [A-Za-z0-9_.-]}
   * @throws NoSuchVmException if the VM no longer exists
   * @throws SnapshotException if the name is taken, the VM has no qcow2 disk, or the hypervisor
   *     refused (for example because a 9p share is mounted in the guest)
   */
  public synchronized SnapshotInfo create(String name, String description) {
    if (name == null || !NAME.matcher(name).matches()) {
      throw new IllegalArgumentException(
          "snapshot name must be 1-64 of [A-Za-z0-9_.-] starting with a letter or digit, was '"
              + name
              + "'");
    }
    VMState state = existingState();
    Optional<SnapshotInfo> clash = find(name);
    if (clash.isPresent() || vm.domain().snapshotNames().contains(name)) {
      throw new SnapshotException(
          "VM "
              + vm.name()
              + " already has a snapshot named "
              + name
              + clash.map(c -> " (taken " + c.createdAt() + ")").orElse("")
              + "; delete it first or choose another name");
    }
    if (vm.template().disks().stream()
        .noneMatch(d -> d.format() == DiskAttachment.Format.QCOW2 && !d.readOnly())) {
      throw new SnapshotException(
          "VM "
              + vm.name()
              + " has no writable qcow2 disk to store a snapshot in; attach one"
              + " (DiskImages.createOverlay), or use MemoryImage for a diskless VM");
    }
    SnapshotInfo.Kind kind = state.isActive() ? SnapshotInfo.Kind.FULL : SnapshotInfo.Kind.DISK;
    SnapshotInfo info =
        new SnapshotInfo(
            name, vm.name(), kind, Instant.now(), description, current().orElse(""), configHash());
    long t0 = System.nanoTime();
    try {
      vm.domain().createSnapshot(name, info.description());
    } catch (AgentVmException e) {
      throw new SnapshotException(
          VM.explainSaveFailure(vm.name(), e.getMessage()).replace("saving", "snapshotting"), e);
    }
    try {
      write(info);
      setCurrent(name);
    } catch (IOException e) {
      // metadata is what lets users find it: do not keep a snapshot nobody knows of
      try {
        vm.domain().deleteSnapshot(name);
      } catch (AgentVmException d) {
        e.addSuppressed(d);
      }
      throw new SnapshotException("writing metadata of snapshot " + name + ": " + e, e);
    }
    LOG.info(
        "snapshot {} of {} taken ({}, {} ms)",
        name,
        vm.name(),
        kind,
        (System.nanoTime() - t0) / 1_000_000);
    return info;
  }

  /** The VM's snapshots, oldest first, as recorded in their metadata. */
  public synchronized List<SnapshotInfo> list() {
    List<SnapshotInfo> out = new ArrayList<>();
    if (!Files.isDirectory(dir)) {
      return out;
    }
    try (Stream<Path> s = Files.list(dir)) {
      for (Path p : s.filter(f -> String.valueOf(f.getFileName()).endsWith(".json")).toList()) {
        out.add(read(p));
      }
    } catch (IOException e) {
      throw new SnapshotException("reading snapshot metadata in " + dir + ": " + e, e);
    }
    out.sort(Comparator.comparing(SnapshotInfo::createdAt));
    return out;
  }

  public synchronized Optional<SnapshotInfo> find(String name) {
    Path f = file(name);
    if (!NAME.matcher(name).matches() || !Files.exists(f)) {
      return Optional.empty();
    }
    try {
      return Optional.of(read(f));
    } catch (IOException e) {
      throw new SnapshotException("reading " + f + ": " + e, e);
    }
  }

  /**
   * Returns the VM to a snapshot: a FULL snapshot leaves it running exactly where it was (memory,
   * processes, disks), with a new agent connection; a DISK snapshot leaves it stopped with its
   * disks as they were.
   *
   * @param agentDeadline how long to wait for the agent after a FULL restore
   * @throws SnapshotException if there is no such snapshot, or it was taken of a different VM
   *     definition
   */
  public synchronized void restore(String name, Duration agentDeadline) {
    existingState();
    SnapshotInfo info =
        find(name)
            .orElseThrow(
                () ->
                    new SnapshotException(
                        "VM "
                            + vm.name()
                            + " has no snapshot named "
                            + name
                            + "; it has "
                            + list().stream().map(SnapshotInfo::name).toList()));
    String hash = configHash();
    if (!hash.equals(info.configHash())) {
      throw new SnapshotException(
          "snapshot "
              + name
              + " was taken of another definition of VM "
              + vm.name()
              + " (config hash "
              + info.configHash()
              + ", now "
              + hash
              + "); it cannot be restored onto this one");
    }
    long t0 = System.nanoTime();
    vm.domain().revertToSnapshot(name);
    if (info.kind() == SnapshotInfo.Kind.FULL) {
      vm.reconnectAgent(agentDeadline);
    }
    vm.state();
    try {
      setCurrent(name);
    } catch (IOException e) {
      LOG.warn("could not record {} as the current snapshot: {}", name, e.getMessage());
    }
    LOG.info(
        "{} restored to snapshot {} ({} ms)",
        vm.name(),
        name,
        (System.nanoTime() - t0) / 1_000_000);
  }

  /**
   * Deletes a snapshot and its metadata.
   *
   * @throws SnapshotException if there is no such snapshot
   */
  public synchronized void delete(String name) {
    existingState();
    boolean inLibvirt = vm.domain().snapshotNames().contains(name);
    boolean recorded = find(name).isPresent();
    if (!inLibvirt && !recorded) {
      throw new SnapshotException("VM " + vm.name() + " has no snapshot named " + name);
    }
    if (inLibvirt) {
      vm.domain().deleteSnapshot(name);
    }
    try {
      Files.deleteIfExists(file(name));
      if (current().filter(name::equals).isPresent()) {
        Files.deleteIfExists(dir.resolve("current"));
      }
    } catch (IOException e) {
      throw new SnapshotException("removing metadata of snapshot " + name + ": " + e, e);
    }
    LOG.info("snapshot {} of {} deleted", name, vm.name());
  }

  private VMState existingState() {
    VMState s = vm.state();
    if (s == VMState.UNDEFINED) {
      throw new NoSuchVmException("VM " + vm.name() + " does not exist (any more)", null);
    }
    return s;
  }

  /** A digest of the VM's definition, the same in any JVM; the owner is not configuration. */
  private String configHash() {
    return vm.domain().persistentDescription().fingerprint();
  }

  private Optional<String> current() {
    try {
      Path f = dir.resolve("current");
      return Files.exists(f) ? Optional.of(Files.readString(f).trim()) : Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    }
  }

  private void setCurrent(String name) throws IOException {
    atomicWrite(dir.resolve("current"), name.getBytes(StandardCharsets.UTF_8));
  }

  private Path file(String name) {
    return dir.resolve(name + ".json");
  }

  private void write(SnapshotInfo i) throws IOException {
    ObjectNode n = JSON.createObjectNode();
    n.put("name", i.name());
    n.put("vm", i.vm());
    n.put("kind", i.kind().name());
    n.put("createdAt", i.createdAt().toString());
    n.put("description", i.description());
    n.put("parent", i.parent());
    n.put("configHash", i.configHash());
    atomicWrite(file(i.name()), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(n));
  }

  private static SnapshotInfo read(Path f) throws IOException {
    JsonNode n = JSON.readTree(f.toFile());
    return new SnapshotInfo(
        n.path("name").asText(),
        n.path("vm").asText(),
        SnapshotInfo.Kind.valueOf(n.path("kind").asText()),
        Instant.parse(n.path("createdAt").asText()),
        n.path("description").asText(),
        n.path("parent").asText(),
        n.path("configHash").asText());
  }

  private void atomicWrite(Path target, byte[] content) throws IOException {
    Files.createDirectories(dir);
    Path tmp = dir.resolve("." + target.getFileName() + ".tmp");
    Files.write(tmp, content);
    Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }
}
