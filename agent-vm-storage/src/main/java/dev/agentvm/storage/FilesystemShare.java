package dev.agentvm.storage;

import dev.agentvm.core.ShareAttachment;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.Hashing;
import dev.agentvm.internal.Setting;
import dev.agentvm.internal.Trees;
import dev.agentvm.protocol.MountSpec;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.nio.file.attribute.UserPrincipal;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A workspace for one execution, shared with the guest over virtio-9p: {@code input/} (read-only to
 * the guest, enforced by QEMU), {@code output/} and {@code work/}. The host puts files into {@code
 * input/} before the run and takes results out of {@code output/} after it; the guest sees them at
 * {@code /workspace/input}, {@code /workspace/output} and {@code /workspace/work} once {@link
 * #mount} ran.
 *
 * <pre>{@code
 * try (FilesystemShare ws = FilesystemShare.create("exec-42")) {
 *   ws.addInput("agent.py", code);
 *   VMTemplate t = VMTemplate.builder(name).boot(boot).share(ws.shares()...)...;
 *   ...
 *   ws.mount(agent, Duration.ofSeconds(10));
 *   agent.exec(...);                                   // writes /workspace/output/result.txt
 *   ExtractedOutput out = ws.extractOutput(dest, OutputLimits.DEFAULT);
 * }                                                    // the workspace is deleted
 * }</pre>
 *
 * <p>Extraction never follows a symbolic link (the guest's links are stored as plain files with
 * their type in an extended attribute; both kinds are skipped and reported), checks the limits
 * before copying anything, and copies into a temporary directory renamed into place: it either
 * delivers everything or leaves nothing.
 *
 * <p>Files the guest writes belong to the QEMU user on the host (mode 0644, directories 0755). As
 * root the workspace's writable directories are given to that user; as another user they are made
 * world-writable (0777) inside a workspace directory only the user and QEMU can reach, and the
 * guest's subdirectories can only be removed by root or through the guest.
 */
public final class FilesystemShare implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(FilesystemShare.class);

  /** Mount tags of the three shares. */
  public static final String INPUT_TAG = "agentvm-input";

  public static final String OUTPUT_TAG = "agentvm-output";
  public static final String WORK_TAG = "agentvm-work";

  /** Where {@link #mount} puts them in the guest. */
  public static final String GUEST_ROOT = "/workspace";

  /** The user libvirt runs QEMU as on Debian ({@code user} in {@code /etc/libvirt/qemu.conf}). */
  public static final String DEFAULT_QEMU_USER = "libvirt-qemu";

  private static final int S_IFMT = 0170000;
  private static final int S_IFREG = 0100000;
  private static final int S_IFDIR = 0040000;

  private final Path root;
  private final AtomicBoolean closed = new AtomicBoolean();

  private FilesystemShare(Path root) {
    this.root = root;
  }

  /**
   * Where workspaces live by default: {@code <state dir>/workspaces} (the state directory is {@code
   * /var/lib/agent-vm} for root; see docs/configuration.md).
   */
  public static Path defaultRoot() {
    return AgentVmPaths.stateRoot().resolve("workspaces");
  }

  /** A new workspace under {@link #defaultRoot()}{@code /<id>}. */
  public static FilesystemShare create(String id) {
    return create(defaultRoot(), id);
  }

  /**
   * A new workspace {@code parent/id}.
   *
   * @throws IllegalArgumentException if {@code id} is not a plain name
   * @throws StorageException if it exists already or cannot be made
   */
  public static FilesystemShare create(Path parent, String id) {
    Path root = GuestPaths.resolve(parent.toAbsolutePath(), id);
    if (id.contains("/")) {
      throw new IllegalArgumentException("id must be a plain name, was " + id);
    }
    try {
      Files.createDirectories(parent);
      Files.createDirectory(root);
      FilesystemShare ws = new FilesystemShare(root);
      Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
      Owners.mark(root); // the guest sees only the three shares, never this file
      Files.createDirectory(ws.input());
      Files.setPosixFilePermissions(ws.input(), PosixFilePermissions.fromString("rwxr-xr-x"));
      for (Path w : List.of(ws.output(), ws.work())) {
        Files.createDirectory(w);
        giveToQemu(w);
      }
      return ws;
    } catch (java.nio.file.FileAlreadyExistsException e) {
      throw new StorageException("workspace " + root + " exists already", e);
    } catch (IOException e) {
      throw new StorageException("cannot create workspace " + root + ": " + e, e);
    }
  }

  private static void giveToQemu(Path dir) throws IOException {
    if ("root".equals(System.getProperty("user.name"))) {
      try {
        UserPrincipal qemu =
            dir.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(qemuUser());
        Files.setOwner(dir, qemu);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
        return;
      } catch (java.nio.file.attribute.UserPrincipalNotFoundException e) {
        LOG.debug("no user {}: making {} world-writable", qemuUser(), dir);
      }
    }
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxrwxrwx"));
  }

  private static String qemuUser() {
    return Setting.QEMU_USER.valueOr(DEFAULT_QEMU_USER);
  }

  public Path root() {
    return root;
  }

  public Path input() {
    return root.resolve("input");
  }

  public Path output() {
    return root.resolve("output");
  }

  public Path work() {
    return root.resolve("work");
  }

  /** The three shares, to attach to a VM template. */
  public List<ShareAttachment> shares() {
    return List.of(
        new ShareAttachment(input(), INPUT_TAG, true),
        new ShareAttachment(output(), OUTPUT_TAG, false),
        new ShareAttachment(work(), WORK_TAG, false));
  }

  /**
   * Puts a file into {@code input/}, creating parent directories.
   *
   * @param relativePath a relative path without {@code ..}, {@code .}, empty segments or NUL
   * @throws IllegalArgumentException if the path is refused
   */
  public Path addInput(String relativePath, byte[] content) {
    Path target = GuestPaths.resolve(input(), relativePath);
    try {
      createParents(target);
      Path tmp = target.resolveSibling("." + target.getFileName() + ".tmp");
      Files.write(tmp, content);
      publish(tmp, target);
      return target;
    } catch (IOException e) {
      throw new StorageException("writing input " + relativePath + ": " + e, e);
    }
  }

  /** Copies a host file into {@code input/}; see {@link #addInput(String, byte[])}. */
  public Path addInput(String relativePath, Path source) {
    Path target = GuestPaths.resolve(input(), relativePath);
    try {
      createParents(target);
      Path tmp = target.resolveSibling("." + target.getFileName() + ".tmp");
      Files.copy(source, tmp, StandardCopyOption.REPLACE_EXISTING);
      publish(tmp, target);
      return target;
    } catch (IOException e) {
      throw new StorageException("copying " + source + " to input " + relativePath + ": " + e, e);
    }
  }

  private void createParents(Path target) throws IOException {
    Path dir = input();
    for (Path seg : input().relativize(target.getParent() == null ? input() : target.getParent())) {
      if (seg.toString().isEmpty()) {
        continue;
      }
      dir = dir.resolve(seg);
      if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
        Files.createDirectory(dir);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
      }
    }
  }

  private static void publish(Path tmp, Path target) throws IOException {
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-r--r--"));
    Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  /**
   * Mounts the three shares in the guest under {@link #GUEST_ROOT}; {@code input} read-only.
   *
   * @throws IOException if the agent refused (e.g. the VM was not given {@link #shares()})
   */
  public void mount(AgentClient agent, Duration deadline) throws IOException {
    agent.mount(new MountSpec(INPUT_TAG, GUEST_ROOT + "/input", true), deadline);
    agent.mount(new MountSpec(OUTPUT_TAG, GUEST_ROOT + "/output", false), deadline);
    agent.mount(new MountSpec(WORK_TAG, GUEST_ROOT + "/work", false), deadline);
  }

  /**
   * Copies the regular files of {@code output/} to {@code destination} (which must not exist).
   * Symbolic links, devices, pipes and sockets are skipped and reported, never followed. All or
   * nothing: on any failure, including a limit, nothing is left at {@code destination}.
   *
   * @throws OutputLimitException if the output exceeds {@code limits}
   * @throws StorageException if {@code destination} exists or copying fails
   */
  public ExtractedOutput extractOutput(Path destination, OutputLimits limits) {
    Path dest = destination.toAbsolutePath();
    if (Files.exists(dest, LinkOption.NOFOLLOW_LINKS)) {
      throw new StorageException("extraction destination " + dest + " exists already");
    }
    List<Path> files = new ArrayList<>();
    List<Path> dirs = new ArrayList<>();
    List<String> skipped = new ArrayList<>();
    scan(limits, files, dirs, skipped);
    long total = 0;
    Path partial = dest.resolveSibling("." + dest.getFileName() + ".partial-" + System.nanoTime());
    List<ExtractedOutput.File> out = new ArrayList<>();
    try {
      Files.createDirectories(partial);
      for (Path d : dirs) {
        Files.createDirectories(partial.resolve(output().relativize(d).toString()));
      }
      for (Path f : files) {
        String rel = output().relativize(f).toString();
        ExtractedOutput.File copied =
            copy(
                f,
                partial.resolve(rel),
                rel,
                Math.min(limits.maxFileBytes(), limits.maxTotalBytes() - total));
        total += copied.size();
        out.add(copied);
      }
      Files.move(partial, dest, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException | RuntimeException e) {
      try {
        Trees.delete(partial);
      } catch (IOException d) {
        e.addSuppressed(d);
      }
      if (e instanceof StorageException se) {
        throw se;
      }
      throw new StorageException("extracting output to " + dest + ": " + e, e);
    }
    out.sort(Comparator.comparing(ExtractedOutput.File::path));
    LOG.debug("extracted {} files ({} bytes) to {}; skipped {}", out.size(), total, dest, skipped);
    return new ExtractedOutput(dest, out, skipped, total);
  }

  /** Skipped entries named in the result; more are only counted. */
  static final int MAX_SKIPPED_NAMED = 100;

  /**
   * Walks output/ without following links and checks the limits before anything is copied: every
   * entry counts against {@code maxEntries}, deeper trees than {@code maxDepth} are refused, and
   * only the first {@link #MAX_SKIPPED_NAMED} skipped names are kept. The sizes seen here are only
   * a first check: the copy is bounded again while it copies.
   */
  private void scan(OutputLimits limits, List<Path> files, List<Path> dirs, List<String> skipped) {
    long[] total = {0};
    int[] entries = {0};
    int[] skippedCount = {0};
    try {
      Files.walkFileTree(
          output(),
          new SimpleFileVisitor<>() {
            private void count(Path p) {
              if (++entries[0] > limits.maxEntries()) {
                throw new OutputLimitException(
                    "output has more than "
                        + limits.maxEntries()
                        + " entries; nothing was extracted");
              }
              if (output().relativize(p).getNameCount() > limits.maxDepth()) {
                throw new OutputLimitException(
                    "output is nested deeper than "
                        + limits.maxDepth()
                        + " levels; nothing was extracted");
              }
            }

            private void skip(String what) {
              if (skippedCount[0]++ < MAX_SKIPPED_NAMED) {
                skipped.add(what);
              }
            }

            @Override
            public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes a) {
              if (!d.equals(output())) {
                count(d);
                dirs.add(d);
              }
              return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFile(Path f, BasicFileAttributes a) throws IOException {
              count(f);
              String rel = output().relativize(f).toString();
              if (!a.isRegularFile()) {
                skip(rel + ": " + (a.isSymbolicLink() ? "symbolic link" : "not a file"));
                return FileVisitResult.CONTINUE;
              }
              int guestType = guestFileType(f);
              if (guestType != S_IFREG && guestType != 0) {
                skip(rel + ": " + describe(guestType) + " in the guest");
                return FileVisitResult.CONTINUE;
              }
              if (a.size() > limits.maxFileBytes()) {
                throw new OutputLimitException(
                    "output file "
                        + rel
                        + " has "
                        + a.size()
                        + " bytes, more than the limit of "
                        + limits.maxFileBytes()
                        + "; nothing was extracted");
              }
              total[0] += a.size();
              files.add(f);
              if (files.size() > limits.maxFiles() || total[0] > limits.maxTotalBytes()) {
                throw new OutputLimitException(
                    "output exceeds the limits ("
                        + limits
                        + "): at least "
                        + files.size()
                        + " files and "
                        + total[0]
                        + " bytes; nothing was extracted");
              }
              return FileVisitResult.CONTINUE;
            }
          });
    } catch (IOException e) {
      throw new StorageException("reading output directory " + output() + ": " + e, e);
    }
    if (skippedCount[0] > MAX_SKIPPED_NAMED) {
      skipped.add("... and " + (skippedCount[0] - MAX_SKIPPED_NAMED) + " more entries skipped");
    }
  }

  /**
   * Copies one file, reading at most {@code budget + 1} bytes whatever the file's size is by then
   * (the guest may have grown it since the scan): over budget is an error, and the caller removes
   * what was written.
   */
  static ExtractedOutput.File copy(Path from, Path to, String rel, long budget) throws IOException {
    MessageDigest md = Hashing.sha256();
    long n = 0;
    byte[] buf = new byte[64 * 1024];
    // NOFOLLOW: the entry was a regular file when scanned; refuse if it became a link since
    try (InputStream in = Files.newInputStream(from, LinkOption.NOFOLLOW_LINKS);
        OutputStream out =
            new DigestOutputStream(
                Files.newOutputStream(to, java.nio.file.StandardOpenOption.CREATE_NEW), md)) {
      while (true) {
        int want = (int) Math.min(buf.length, budget + 1 - n);
        int r = in.read(buf, 0, want);
        if (r < 0) {
          break;
        }
        n += r;
        if (n > budget) {
          throw new OutputLimitException(
              "output file "
                  + rel
                  + " grew past the limit of "
                  + budget
                  + " bytes while it was copied; nothing was extracted");
        }
        out.write(buf, 0, r);
      }
    }
    return new ExtractedOutput.File(rel, n, Hashing.hex(md.digest()));
  }

  /**
   * The file type the guest sees, from the {@code user.virtfs.mode} attribute QEMU's mapped mode
   * keeps (0 if there is none: a file the host put there).
   */
  private static int guestFileType(Path f) {
    try {
      UserDefinedFileAttributeView v =
          Files.getFileAttributeView(
              f, UserDefinedFileAttributeView.class, LinkOption.NOFOLLOW_LINKS);
      if (v == null || !v.list().contains("virtfs.mode")) {
        return 0;
      }
      ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      v.read("virtfs.mode", b);
      b.flip();
      return b.remaining() >= 4 ? b.getInt() & S_IFMT : 0;
    } catch (IOException | UnsupportedOperationException e) {
      return 0;
    }
  }

  private static String describe(int type) {
    return switch (type) {
      case 0120000 -> "symbolic link";
      case 0140000 -> "socket";
      case 0060000 -> "block device";
      case 0020000 -> "character device";
      case 0010000 -> "pipe";
      case S_IFDIR -> "directory";
      default -> "special file";
    };
  }

  /** Deletes the workspace. Idempotent. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      try {
        Trees.delete(root);
      } catch (IOException e) {
        throw new StorageException(
            "removing workspace " + root + ": " + e + " (files the guest made may need root)", e);
      }
    }
  }
}
