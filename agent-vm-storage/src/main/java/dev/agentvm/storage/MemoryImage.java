package dev.agentvm.storage;

import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.HostStorage;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.SnapshotException;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.Trees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The saved memory of a booted, agent-ready VM, from which many VMs ("clones") start in a fraction
 * of a cold boot. Each clone gets its own name, UUID, generation id, agent socket, console log and
 * copy-on-write overlays of the template's disks; after the restore its hostname and machine id are
 * set anew and its random number generator is reseeded (by the new generation id and by bytes from
 * the host), so clones never share secrets drawn from randomness.
 *
 * <pre>{@code
 * try (MemoryImage image = MemoryImage.capture(conn, template, dir, Duration.ofSeconds(90))) {
 *   try (VM a = image.restore(conn, "agentvm-a", Map.of(), Duration.ofSeconds(30));
 *        VM b = image.restore(conn, "agentvm-b", Map.of(), Duration.ofSeconds(30))) {
 *     a.awaitAgent(Duration.ofSeconds(5)).exec(...);
 *   }
 * }
 * }</pre>
 *
 * <p>The template's shares exist in every clone but are not mounted (QEMU cannot save a VM with a
 * mounted 9p share); give each clone its own directories with the {@code shareDirs} of {@link
 * #restore} and mount them after the restore. Thread-safe; {@link #close()} deletes the image.
 *
 * <p>On a remote host ({@link LibvirtConnection#hostStorage()}) the memory is saved into the host's
 * pool, named in {@code dir} ({@code host.properties}, written before the save), and clones are
 * restored there, through a connection to that host; the template may have no writable disk and no
 * share, and {@code dir} must lie under {@code <state>/images}, where a reap of that host finds the
 * images of processes that died without closing them ({@link StorageReaper}).
 */
public final class MemoryImage implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(MemoryImage.class);

  /** In the image directory of an image on a remote host: the host's URI and the pool file. */
  static final String HOST_RECORD = "host.properties";

  private final Path dir;
  private final Path file;
  private final VMTemplate template;
  private final Duration captureTime;
  private final @Nullable HostStorage host;
  private final @Nullable String hostName;
  private final @Nullable String hostUri;
  private final AtomicBoolean closed = new AtomicBoolean();

  private MemoryImage(
      Path dir,
      VMTemplate template,
      Duration captureTime,
      @Nullable HostStorage host,
      @Nullable String hostName,
      @Nullable String hostUri) {
    this.dir = dir;
    this.file = host == null || hostName == null ? dir.resolve("memory.save") : host.path(hostName);
    this.template = template;
    this.captureTime = captureTime;
    this.host = host;
    this.hostName = hostName;
    this.hostUri = hostUri;
  }

  /**
   * Boots a VM from {@code template}, waits for its agent, saves its memory into {@code dir} and
   * removes the VM. The template's writable disks must live in {@code dir} (they become the
   * read-only base of every clone's disks); read-only disks (an image flavour's package disk) may
   * lie anywhere and are attached to every clone as they are. Its shares must not be mounted.
   *
   * @throws IllegalArgumentException if a writable disk lies outside {@code dir}; on a remote host,
   *     if the template has a writable disk or a share, or {@code dir} is not under {@code
   *     <state>/images}
   * @throws SnapshotException if the VM could not be booted or saved
   */
  public static MemoryImage capture(
      LibvirtConnection conn, VMTemplate template, Path dir, Duration agentDeadline) {
    Path d = dir.toAbsolutePath();
    HostStorage host = conn.hostStorage().orElse(null);
    if (host != null) {
      checkRemote(conn, template, d);
    }
    for (DiskAttachment disk : template.disks()) {
      if (!disk.readOnly() && !disk.file().startsWith(d)) {
        throw new IllegalArgumentException(
            "disk " + disk.file() + " must lie in the image directory " + d);
      }
    }
    String hostName = host == null ? null : "mi." + UUID.randomUUID() + ".save";
    try {
      Files.createDirectories(d);
      Files.setPosixFilePermissions(d, PosixFilePermissions.fromString("rwxr-xr-x"));
      Owners.mark(d);
      if (hostName != null) {
        // before the save makes the file: a process that dies in between leaves it named here
        writeHostRecord(d, conn.uri(), hostName);
      }
    } catch (IOException e) {
      throw new StorageException("cannot create " + d + ": " + e.getMessage(), e);
    }
    long t0 = System.nanoTime();
    String hostUri = host == null ? null : conn.uri();
    MemoryImage image = new MemoryImage(d, template, Duration.ZERO, host, hostName, hostUri);
    try (VM vm = conn.define(template)) {
      vm.start();
      warmUp(vm.awaitAgent(agentDeadline), agentDeadline);
      vm.saveMemory(image.file);
    } catch (RuntimeException e) {
      image.deleteFile(e);
      throw e instanceof SnapshotException
          ? e
          : new SnapshotException("capturing a memory image of " + template.name() + ": " + e, e);
    }
    for (DiskAttachment disk : template.disks()) {
      if (disk.readOnly()) {
        continue; // shared as it is, and not ours
      }
      try {
        // every clone's overlay reads it: it must never change again
        Files.setPosixFilePermissions(disk.file(), PosixFilePermissions.fromString("r--r--r--"));
      } catch (IOException e) {
        throw new StorageException("cannot make " + disk.file() + " read-only: " + e, e);
      }
    }
    Duration took = Duration.ofNanos(System.nanoTime() - t0);
    LOG.info(
        "memory image of {} captured in {} ms ({} MB)",
        template.name(),
        took.toMillis(),
        image.sizeBytes() / 1_000_000);
    return new MemoryImage(d, template, took, host, hostName, hostUri);
  }

  private static void checkRemote(LibvirtConnection conn, VMTemplate template, Path dir) {
    Path images = AgentVmPaths.stateRoot().resolve("images").toAbsolutePath();
    String problem = null;
    if (!template.shares().isEmpty()) {
      problem = "a share of this machine's directories";
    } else if (template.disks().stream().anyMatch(disk -> !disk.readOnly())) {
      // each clone would need an overlay made and removed on the host: sandboxes do that
      problem = "a writable disk (use sandboxes for VMs with a disk on another host)";
    } else if (!dir.startsWith(images) || dir.equals(images)) {
      // a reap of the host looks for the records of dead processes there
      problem = "an image directory outside " + images + ", where a reap would not find it";
    }
    if (problem != null) {
      throw new IllegalArgumentException(
          "a memory image of " + template.name() + " on " + conn.uri() + " cannot have " + problem);
    }
  }

  private static void writeHostRecord(Path dir, String uri, String name) throws IOException {
    java.util.Properties p = new java.util.Properties();
    p.setProperty("uri", uri);
    p.setProperty("file", name);
    Path tmp = dir.resolve(HOST_RECORD + ".tmp");
    try (java.io.OutputStream out = Files.newOutputStream(tmp)) {
      p.store(out, "a memory image in the pool of a libvirt host");
    }
    Files.move(
        tmp,
        dir.resolve(HOST_RECORD),
        java.nio.file.StandardCopyOption.ATOMIC_MOVE,
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
  }

  /**
   * The host's URI and the pool file named by an image directory's record, or empty for an image of
   * this machine.
   *
   * @throws IOException if there is a record that cannot be read
   */
  static java.util.Optional<String[]> hostRecord(Path dir) throws IOException {
    Path f = dir.resolve(HOST_RECORD);
    if (!Files.exists(f)) {
      return java.util.Optional.empty();
    }
    java.util.Properties p = new java.util.Properties();
    try (java.io.InputStream in = Files.newInputStream(f)) {
      p.load(in);
    }
    String uri = p.getProperty("uri", "");
    String file = p.getProperty("file", "");
    if (uri.isEmpty() || !file.startsWith("mi.")) {
      throw new IOException(f + " names no host image");
    }
    return java.util.Optional.of(new String[] {uri, file});
  }

  private void deleteFile(RuntimeException failure) {
    if (host == null || hostName == null) {
      DiskImages.deleteQuietly(file);
      return;
    }
    try {
      host.delete(hostName); // nothing happens if the save never made it
    } catch (RuntimeException e) {
      failure.addSuppressed(e); // the record stays: the host's next reap removes it
    }
  }

  /**
   * Runs, once, each kind of request a copy of the saved agent serves first, so that the save holds
   * their classes loaded: under TCG a fresh agent's first use of a kind costs 0.1-0.5 s (class
   * loading in the interpreter), later uses a few ms. Commands (with input, as an identity refresh
   * runs them), a directory made, a file written, examined, listed, read back, renamed and removed,
   * under the guest's {@code /tmp}, which is left as it was. Only for a guest about to be saved:
   * when this fails, nothing may be saved (a half-done warm-up leaves its directory there).
   *
   * @throws SnapshotException if the agent failed any of it (the guest needs a writable {@code
   *     /tmp})
   */
  public static void warmUp(AgentClient agent, Duration deadline) {
    String dir = "/tmp/.agentvm-warm-up";
    Path local = null;
    try {
      for (int i = 0; i < 2; i++) {
        agent.exec(
            ExecRequest.script("hostname >/dev/null && cat >/dev/null", "sh")
                .withStdin(new byte[] {1})
                .withTimeout(deadline));
        agent.exec(ExecRequest.command("true").withTimeout(deadline));
      }
      local = Files.createTempDirectory("agentvm-warm-up");
      Path file = Files.write(local.resolve("f"), new byte[] {1, 2, 3});
      for (int i = 0; i < 2; i++) {
        agent.mkdir(dir + "/d", true, deadline);
        agent.putFile(file, dir + "/d/f", 0644, deadline);
        agent.stat(dir + "/d/f", deadline);
        agent.list(dir + "/d", 16, deadline);
        // the three bytes sent, no more: a fresh guest, but a guest all the same
        agent.getFile(dir + "/d/f", local.resolve("back" + i), deadline, 3);
        agent.rename(dir + "/d/f", dir + "/d/g", deadline);
        agent.remove(dir, true, deadline);
      }
    } catch (IOException e) {
      throw new SnapshotException(
          "warming up the agent before the save failed (the guest needs a writable /tmp): "
              + LogText.clean(e.toString()),
          e);
    } finally {
      IOException left = local == null ? null : Trees.deleteQuietly(local);
      if (left != null) {
        LOG.warn("cannot delete {}: {}", local, left.toString());
      }
    }
  }

  /** The saved memory and device state. */
  public Path file() {
    return file;
  }

  /** The template the image was captured from. */
  public VMTemplate template() {
    return template;
  }

  /** Boot plus save time of {@link #capture}. */
  public Duration captureTime() {
    return captureTime;
  }

  /** Its size in bytes; 0 for an image on a remote host (this machine cannot read the file). */
  public long sizeBytes() {
    if (host != null) {
      return 0;
    }
    try {
      return Files.size(file);
    } catch (IOException e) {
      return 0;
    }
  }

  /**
   * Starts a clone named {@code name}, waits for its agent and gives it its own identity. The
   * returned VM is running; closing it removes it and its disks.
   *
   * @param shareDirs host directories for the template's share tags (others keep the template's)
   * @throws SnapshotException if the image is gone or the restore failed (nothing is left behind)
   */
  public VM restore(
      LibvirtConnection conn, String name, Map<String, Path> shareDirs, Duration agentDeadline) {
    if (closed.get()) {
      throw new SnapshotException("memory image " + dir + " is closed");
    }
    if (hostUri != null
        && !AgentVmPaths.hostIdentity(hostUri).equals(AgentVmPaths.hostIdentity(conn.uri()))) {
      throw new SnapshotException(
          "memory image " + dir + " is on " + hostUri + "; restore it there, not on " + conn.uri());
    }
    VMTemplate.Builder b = template.copyAs(name).genid(UUID.randomUUID());
    Path runDir = AgentVmPaths.runDir(name);
    b.runDir(runDir);
    try {
      for (DiskAttachment disk : template.disks()) {
        if (disk.readOnly()) {
          b.disk(disk); // nothing writes it: every clone reads the one file
          continue;
        }
        Path overlay = runDir.resolve(disk.target() + ".qcow2");
        // the format the template says, never probed: a guest wrote this disk
        DiskImages.createOverlay(disk.file(), disk.format().driverType(), overlay, 0);
        b.disk(
            new DiskAttachment(
                overlay,
                DiskAttachment.Format.QCOW2,
                disk.target(),
                disk.readOnly(),
                disk.guestMountPoint()));
      }
    } catch (RuntimeException e) {
      deleteRunDir(runDir, e);
      throw e;
    }
    for (ShareAttachment s : template.shares()) {
      b.share(
          new ShareAttachment(shareDirs.getOrDefault(s.tag(), s.hostDir()), s.tag(), s.readOnly()));
    }
    VMTemplate cloneTemplate = b.build();
    VM vm;
    try {
      vm = conn.restore(file, cloneTemplate);
    } catch (RuntimeException e) {
      deleteRunDir(runDir, e);
      throw e;
    }
    try {
      GuestIdentity.refresh(vm, vm.awaitAgent(agentDeadline), agentDeadline);
      return vm;
    } catch (RuntimeException | IOException e) {
      SnapshotException failure =
          new SnapshotException("clone " + name + " did not come up: " + e.getMessage(), e);
      try {
        vm.close();
      } catch (RuntimeException c) {
        failure.addSuppressed(c);
      }
      throw failure;
    }
  }

  private static void deleteRunDir(Path runDir, RuntimeException failure) {
    try {
      Trees.delete(runDir);
    } catch (IOException e) {
      failure.addSuppressed(e);
    }
  }

  /**
   * Deletes the image: the memory file (on its host, for an image on a remote host) and the image
   * directory with the template's disks. Idempotent; when its host cannot be reached it throws, and
   * the directory's record stays for a later reap of that host.
   */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      try {
        if (host != null && hostName != null) {
          host.delete(hostName);
        }
        Trees.delete(dir);
      } catch (IOException e) {
        throw new StorageException("removing memory image " + dir + ": " + e, e);
      }
    }
  }
}
