package dev.agentvm.execution;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.storage.FilesystemShare;
import dev.agentvm.storage.MemoryImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/**
 * Makes pool VMs by restoring clones of one memory image: under a second each on hosts where a cold
 * boot takes several. The image is captured once, by {@link #capture}, from a template that {@link
 * #withWorkspaceShares} gave the workspace shares; each clone gets its own workspace, mounted after
 * the restore.
 *
 * <pre>{@code
 * try (CloneVmFactory f = CloneVmFactory.capture(conn, template, Duration.ofMinutes(2));
 *      VMPool pool = VMPool.start(f, PoolConfig.DEFAULT)) { ... }
 * }</pre>
 *
 * <p>On this machine's libvirt only (workspaces are 9p shares of local directories): {@link
 * #capture} and the constructor refuse a connection to another machine.
 */
public final class CloneVmFactory extends WorkspaceVmFactory implements AutoCloseable {
  private final LibvirtConnection conn;
  private final MemoryImage image;
  private final boolean ownsImage;

  /**
   * @param image captured from a template with the workspace shares ({@link #withWorkspaceShares})
   * @param workspaces where the clones' workspaces go
   * @param discardGrace how long a used clone gets to power off before it is destroyed; zero by
   *     default, because a clone's state is thrown away by design and nothing in it needs flushing
   */
  public CloneVmFactory(
      LibvirtConnection conn,
      MemoryImage image,
      Path workspaces,
      Duration agentDeadline,
      Duration discardGrace) {
    this(conn, image, workspaces, agentDeadline, discardGrace, false);
  }

  private CloneVmFactory(
      LibvirtConnection conn,
      MemoryImage image,
      Path workspaces,
      Duration agentDeadline,
      Duration discardGrace,
      boolean ownsImage) {
    super(workspaces, agentDeadline, discardGrace);
    requireLocal(conn);
    this.conn = conn;
    this.image = image;
    this.ownsImage = ownsImage;
  }

  /**
   * Captures a memory image of {@code template} (given the workspace shares) under the state
   * directory and returns a factory that owns it: closing the factory deletes the image.
   */
  public static CloneVmFactory capture(
      LibvirtConnection conn, VMTemplate template, Duration agentDeadline) {
    requireLocal(conn); // before the capture: it would be refused there, after a boot
    Path root = AgentVmPaths.stateRoot().resolve("images").resolve(template.name());
    VMTemplate t = withWorkspaceShares(template, root.resolve("workspace"));
    MemoryImage image;
    try {
      image = MemoryImage.capture(conn, t, root, agentDeadline);
    } catch (RuntimeException e) {
      try {
        dev.agentvm.internal.Trees.delete(
            root); // the placeholder shares made above, and anything partial
      } catch (java.io.IOException c) {
        e.addSuppressed(c);
      }
      throw e;
    }
    return new CloneVmFactory(
        conn, image, FilesystemShare.defaultRoot(), agentDeadline, Duration.ZERO, true);
  }

  /**
   * The template with the three workspace shares, pointing at placeholder directories under {@code
   * placeholder} (each clone gets its own).
   */
  public static VMTemplate withWorkspaceShares(VMTemplate template, Path placeholder) {
    VMTemplate.Builder b = template.newBuilder();
    try {
      for (String tag :
          new String[] {
            FilesystemShare.INPUT_TAG, FilesystemShare.OUTPUT_TAG, FilesystemShare.WORK_TAG
          }) {
        Path d = Files.createDirectories(placeholder.resolve(tag));
        Files.setPosixFilePermissions(d, PosixFilePermissions.fromString("rwxr-xr-x"));
        b.share(new ShareAttachment(d, tag, tag.equals(FilesystemShare.INPUT_TAG)));
      }
      Files.setPosixFilePermissions(placeholder, PosixFilePermissions.fromString("rwxr-xr-x"));
    } catch (IOException e) {
      throw new dev.agentvm.storage.StorageException("cannot create " + placeholder + ": " + e, e);
    }
    return b.build();
  }

  public MemoryImage image() {
    return image;
  }

  @Override
  VM start(String name, FilesystemShare workspace, Duration agentDeadline) {
    Map<String, Path> dirs = new HashMap<>();
    for (ShareAttachment s : workspace.shares()) {
      dirs.put(s.tag(), s.hostDir());
    }
    return image.restore(conn, name, dirs, agentDeadline);
  }

  @Override
  public String kind() {
    return "restore";
  }

  /** Deletes the memory image if this factory captured it. */
  @Override
  public void close() {
    if (ownsImage) {
      image.close();
    }
  }
}
