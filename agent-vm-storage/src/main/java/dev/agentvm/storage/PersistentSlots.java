package dev.agentvm.storage;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.Reaper;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.ProcessOwners;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Named disks that outlive tasks (package caches, build caches), one holder at a time.
 *
 * <p>A slot is a writable qcow2 image holding an ext4 filesystem, {@code <name>.qcow2} under the
 * root, made on first use. Holding it means owning {@code <name>.holder}, a file created
 * exclusively (atomic across threads and processes) that names the holding process. {@link
 * Slot#close()} removes it. When the holder dies without closing, the file stays and the slot stays
 * taken until the {@link Reaper} (run by every {@link LibvirtConnection#open()}) has removed the
 * dead process's VMs and then the holder file: taking over a slot earlier could put two QEMUs on
 * one disk.
 *
 * <pre>{@code
 * try (PersistentSlots.Slot cache = PersistentSlots.atDefaultRoot()
 *         .acquire("pip-cache", 1L << 30, "task-17", Duration.ofSeconds(30))) {
 *   template.disk(DiskAttachment.qcow2(cache.disk(), "vdb", "/slots/pip-cache"));
 * }
 * }</pre>
 */
public final class PersistentSlots {
  private static final Logger LOG = LoggerFactory.getLogger(PersistentSlots.class);
  private static final Pattern NAME = Pattern.compile("[a-z0-9][a-z0-9_-]{0,62}");
  static final String HOLDER = ".holder";

  private final Path root;

  private PersistentSlots(Path root) {
    this.root = root.toAbsolutePath();
  }

  /** Slots under {@code root}. */
  public static PersistentSlots at(Path root) {
    return new PersistentSlots(root);
  }

  /** Slots under the state directory's {@code slots/}, where the reaper looks. */
  public static PersistentSlots atDefaultRoot() {
    return new PersistentSlots(AgentVmPaths.stateRoot().resolve("slots"));
  }

  public Path root() {
    return root;
  }

  /** A held slot; closing it lets the next task have it. */
  public static final class Slot implements AutoCloseable {
    private final String name;
    private final Path disk;
    private final Path holderFile;
    private boolean released;

    private Slot(String name, Path disk, Path holderFile) {
      this.name = name;
      this.disk = disk;
      this.holderFile = holderFile;
    }

    public String name() {
      return name;
    }

    /** The slot's qcow2 image, writable; attach it to at most one VM at a time. */
    public Path disk() {
      return disk;
    }

    /** Releases the slot. The VM that used the disk must be gone (or have let go of it) first. */
    @Override
    public synchronized void close() {
      if (released) {
        return;
      }
      released = true;
      try {
        Files.deleteIfExists(holderFile);
        LOG.debug("slot {} released", name);
      } catch (IOException e) {
        throw new StorageException("cannot release slot " + name + ": " + e, e);
      }
    }
  }

  /** Thrown when a slot stays held by someone else for the whole wait. */
  public static final class SlotBusyException extends StorageException {
    private static final long serialVersionUID = 1L;

    private final String holder;

    SlotBusyException(String name, String holder, boolean holderAlive) {
      super(
          "slot "
              + name
              + " is held by "
              + holder
              + (holderAlive
                  ? ""
                  : ", a process that is gone; the reaper releases it once that process's VMs are"
                      + " removed (LibvirtConnection.open() runs it)"));
      this.holder = holder;
    }

    /** The holder's description: owning process and task. */
    public String holder() {
      return holder;
    }
  }

  /**
   * Takes the slot {@code name}, creating its disk ({@code size} bytes, ext4) on first use, waiting
   * up to {@code wait} while another task holds it.
   *
   * @param task who holds it, for messages and the holder file
   * @throws SlotBusyException if it is still held when the wait ends
   */
  public Slot acquire(String name, long size, String task, Duration wait) {
    Objects.requireNonNull(task, "task");
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException("slot name must match " + NAME + ", was '" + name + "'");
    }
    Path holderFile = take(name, task, wait);
    try {
      Path disk = root.resolve(name + ".qcow2");
      if (!Files.exists(disk)) {
        DiskImages.createExt4(disk, size, null);
        // createExt4 makes read-only bases; a slot is written to
        Files.setPosixFilePermissions(disk, PosixFilePermissions.fromString("rw-r--r--"));
        LOG.info("slot {} created: {} ({} bytes)", name, disk, size);
      }
      return new Slot(name, disk, holderFile);
    } catch (IOException | RuntimeException e) {
      try {
        Files.deleteIfExists(holderFile);
      } catch (IOException c) {
        e.addSuppressed(c);
      }
      throw e instanceof StorageException s
          ? s
          : new StorageException("cannot prepare slot " + name + ": " + e, e);
    }
  }

  private Path take(String name, String task, Duration wait) {
    long deadline = System.nanoTime() + wait.toNanos();
    Path holderFile = root.resolve(name + HOLDER);
    try {
      Files.createDirectories(root);
      while (true) {
        try {
          Files.writeString(
              holderFile,
              LibvirtConnection.processOwner() + "\n" + task + "\n",
              StandardCharsets.UTF_8,
              java.nio.file.StandardOpenOption.CREATE_NEW,
              java.nio.file.StandardOpenOption.WRITE);
          break;
        } catch (FileAlreadyExistsException taken) {
          if (System.nanoTime() > deadline) {
            String[] h = holderOf(holderFile);
            throw new SlotBusyException(
                name, h[0] + " (task " + h[1] + ")", h[0].isEmpty() || ProcessOwners.isAlive(h[0]));
          }
          try {
            Thread.sleep(100);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new StorageException("interrupted waiting for slot " + name, e);
          }
        }
      }
    } catch (IOException e) {
      throw new StorageException("cannot take slot " + name + ": " + e, e);
    }
    return holderFile;
  }

  /** Names of the slots that exist (held or not). */
  public List<String> names() {
    try (var s = Files.list(root)) {
      return s.map(p -> String.valueOf(p.getFileName()))
          .filter(n -> n.endsWith(".qcow2"))
          .map(n -> n.substring(0, n.length() - ".qcow2".length()))
          .sorted()
          .toList();
    } catch (NoSuchFileException e) {
      return List.of();
    } catch (IOException e) {
      throw new StorageException("cannot list slots in " + root + ": " + e, e);
    }
  }

  /** Deletes a slot's disk; refused while it is held. */
  public void delete(String name) {
    if (!NAME.matcher(name).matches()) {
      throw new IllegalArgumentException("slot name must match " + NAME + ", was '" + name + "'");
    }
    Path holderFile = take(name, "delete", Duration.ZERO);
    try {
      Files.deleteIfExists(root.resolve(name + ".qcow2"));
      Files.deleteIfExists(holderFile);
    } catch (IOException e) {
      throw new StorageException("cannot delete slot " + name + ": " + e, e);
    }
  }

  /** The owner and task in a holder file (empty strings if unreadable). */
  static String[] holderOf(Path holderFile) {
    try {
      // limit -1 keeps a trailing empty line, which reads as the "" used when it is missing
      String[] lines = Files.readString(holderFile, StandardCharsets.UTF_8).split("\n", -1);
      return new String[] {lines[0].trim(), lines.length > 1 ? lines[1].trim() : ""};
    } catch (IOException e) {
      return new String[] {"", ""};
    }
  }
}
