package dev.agentvm.execution.sandbox;

import dev.agentvm.internal.Trees;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.FsEntry;
import dev.agentvm.protocol.FsEvent;
import dev.agentvm.protocol.FsListing;
import dev.agentvm.protocol.FsRequest;
import dev.agentvm.storage.ExtractedOutput;
import dev.agentvm.storage.OutputLimitException;
import dev.agentvm.storage.OutputLimits;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Files in a sandbox's guest, moved over the agent protocol (checksummed; a written file appears
 * under its name only once complete). Paths are absolute guest paths; UTF-8 names are kept as they
 * are. Every call has a deadline of the sandbox's command timeout; a paused sandbox is resumed
 * first.
 */
public final class SandboxFiles {
  /** The most bytes {@link #read(String)} returns; larger files: {@link #download}. */
  public static final long MAX_READ_BYTES = 64L << 20;

  private final Sandbox sandbox;

  SandboxFiles(Sandbox sandbox) {
    this.sandbox = sandbox;
  }

  /** Writes {@code content} to {@code path} (mode 0644), creating missing parent directories. */
  public FileHeader write(String path, byte[] content) throws IOException {
    return write(path, content, 0644);
  }

  /** Writes {@code content} to {@code path} with permission bits {@code mode}. */
  public FileHeader write(String path, byte[] content, int mode) throws IOException {
    return viaTemp(
        tmp -> {
          Files.write(tmp, content);
          return upload(tmp, path, mode);
        });
  }

  /** Writes everything {@code in} yields to {@code path} (mode 0644); {@code in} is not closed. */
  public FileHeader write(String path, InputStream in) throws IOException {
    return viaTemp(
        tmp -> {
          Files.copy(in, tmp, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
          return upload(tmp, path, 0644);
        });
  }

  /** Copies the host file {@code local} to {@code path} in the guest. */
  public FileHeader upload(Path local, String path, int mode) throws IOException {
    return sandbox.withAgent(a -> a.putFile(local, path, mode, deadline()));
  }

  /** Copies the guest file {@code path} to {@code local} (replaced once complete and checked). */
  public FileHeader download(String path, Path local) throws IOException {
    return sandbox.withAgent(a -> a.getFile(path, local, deadline()));
  }

  /**
   * The content of the guest file {@code path}, at most {@link #MAX_READ_BYTES}.
   *
   * @throws IOException if it is larger
   */
  public byte[] read(String path) throws IOException {
    return viaTemp(
        tmp ->
            sandbox.withAgent(
                a -> {
                  a.getFile(path, tmp, deadline(), MAX_READ_BYTES);
                  return Files.readAllBytes(tmp);
                }));
  }

  /** Skipped entries named in an extraction's result; more are only counted. */
  static final int MAX_SKIPPED_NAMED = 100;

  /**
   * Copies the tree under the guest directory {@code dir} to the new host directory {@code
   * destination}, within {@code limits}: every entry counts against {@code maxEntries}, deeper
   * trees than {@code maxDepth} and larger files than the remaining byte budget are refused while
   * they are copied (never more than the budget is written on the host). Links, devices and pipes
   * are skipped and reported, never followed; names the guest sends are checked before use. The
   * tree is copied into a temporary directory beside {@code destination} and renamed into place:
   * everything arrives, or nothing.
   *
   * @throws dev.agentvm.storage.OutputLimitException if a limit was reached (nothing is left)
   * @throws IOException if {@code destination} exists or a copy failed (nothing is left)
   */
  public ExtractedOutput extract(String dir, Path destination, OutputLimits limits)
      throws IOException {
    Path dest = destination.toAbsolutePath();
    Path parent = dest.getParent();
    if (parent == null) {
      throw new IOException("cannot extract to " + dest + ": not a directory path");
    }
    if (Files.exists(dest, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      throw new java.nio.file.FileAlreadyExistsException(dest + " exists already");
    }
    Files.createDirectories(parent);
    Path partial = Files.createTempDirectory(parent, "." + dest.getFileName() + ".partial-");
    Extraction x = new Extraction(limits, partial);
    try {
      x.walk(trimSlash(dir), "", 0);
      Files.move(partial, dest, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException | RuntimeException e) {
      IOException d = Trees.deleteQuietly(partial);
      if (d != null) {
        e.addSuppressed(d);
      }
      throw e;
    }
    x.files.sort(java.util.Comparator.comparing(ExtractedOutput.File::path));
    List<String> skipped = new java.util.ArrayList<>(x.skipped);
    if (x.skippedCount > skipped.size()) {
      skipped.add("... and " + (x.skippedCount - skipped.size()) + " more");
    }
    return new ExtractedOutput(dest, x.files, skipped, x.total);
  }

  private static String trimSlash(String dir) {
    String d = dir;
    while (d.length() > 1 && d.endsWith("/")) {
      d = d.substring(0, d.length() - 1);
    }
    return d;
  }

  /** One extraction's counters. */
  private final class Extraction {
    final OutputLimits limits;
    final Path into;
    final List<ExtractedOutput.File> files = new java.util.ArrayList<>();
    final List<String> skipped = new java.util.ArrayList<>();
    int skippedCount;
    int entries;
    long total;

    Extraction(OutputLimits limits, Path into) {
      this.limits = limits;
      this.into = into;
    }

    void walk(String guestDir, String rel, int depth) throws IOException {
      int room = limits.maxEntries() - entries;
      FsListing listing = listing(guestDir, Math.min(FsRequest.MAX_LIST, room + 1));
      if (listing.truncated() && room + 1 > FsRequest.MAX_LIST) {
        throw new OutputLimitException(
            "output directory "
                + printable(rel.isEmpty() ? "." : rel)
                + " has more than "
                + FsRequest.MAX_LIST
                + " entries; nothing was extracted");
      }
      for (FsEntry e : listing.entries()) {
        if (++entries > limits.maxEntries()) {
          throw new OutputLimitException(
              "output has more than " + limits.maxEntries() + " entries; nothing was extracted");
        }
        String name = e.name();
        if (name.isEmpty()
            || name.equals(".")
            || name.equals("..")
            || name.indexOf('/') >= 0
            || name.indexOf('\0') >= 0) {
          throw new IOException("the guest listed an unusable name " + printable(name));
        }
        String path = rel.isEmpty() ? name : rel + "/" + name;
        if (depth + 1 > limits.maxDepth()) {
          throw new OutputLimitException(
              "output is nested deeper than "
                  + limits.maxDepth()
                  + " levels; nothing was extracted");
        }
        String guestPath = guestDir.equals("/") ? "/" + name : guestDir + "/" + name;
        switch (e.kind()) {
          case DIRECTORY -> {
            Files.createDirectory(into.resolve(path));
            walk(guestPath, path, depth + 1);
          }
          case FILE -> copy(guestPath, path, e.size());
          case SYMLINK, OTHER -> {
            if (skippedCount++ < MAX_SKIPPED_NAMED) {
              skipped.add(path + (e.kind() == FsEntry.Kind.SYMLINK ? " (link)" : " (not a file)"));
            }
          }
        }
      }
    }

    private void copy(String guestPath, String path, long announced) throws IOException {
      if (files.size() + 1 > limits.maxFiles()) {
        throw new OutputLimitException(
            "output has more than " + limits.maxFiles() + " files; nothing was extracted");
      }
      long budget = Math.min(limits.maxFileBytes(), limits.maxTotalBytes() - total);
      if (announced > budget) {
        throw tooLarge(path, announced, budget);
      }
      FileHeader h;
      try {
        h = sandbox.withAgent(a -> a.getFile(guestPath, into.resolve(path), deadline(), budget));
      } catch (dev.agentvm.core.agent.AgentLimitException e) {
        throw tooLarge(path, -1, budget);
      } catch (dev.agentvm.core.agent.AgentErrorException e) {
        if (e.code() == dev.agentvm.protocol.ErrorCode.FRAME_TOO_LARGE) {
          throw tooLarge(path, -1, budget);
        }
        throw e;
      }
      total += h.size();
      files.add(
          new ExtractedOutput.File(
              path,
              h.size(),
              java.util.HexFormat.of().formatHex(java.util.HexFormat.of().parseHex(h.sha256()))));
    }

    private OutputLimitException tooLarge(String path, long size, long budget) {
      return new OutputLimitException(
          "output file "
              + printable(path)
              + (size >= 0 ? " has " + size + " bytes," : " grew")
              + " more than the "
              + budget
              + " bytes left of the limits ("
              + limits.maxFileBytes()
              + " per file, "
              + limits.maxTotalBytes()
              + " in all); nothing was extracted");
    }
  }

  /** A guest-chosen name for a message: control characters escaped, cut to 200 characters. */
  private static String printable(String name) {
    return "'" + dev.agentvm.internal.LogText.clean(name) + "'";
  }

  /** The entry at {@code path} (a link is reported, not followed). */
  public FsEntry stat(String path) throws IOException {
    return sandbox.withAgent(a -> a.stat(path, deadline()));
  }

  /** Whether anything exists at {@code path}. */
  public boolean exists(String path) throws IOException {
    try {
      stat(path);
      return true;
    } catch (dev.agentvm.core.agent.AgentErrorException e) {
      if (e.code() == dev.agentvm.protocol.ErrorCode.NOT_FOUND) {
        return false;
      }
      throw e;
    }
  }

  /**
   * The entries of directory {@code dir}, sorted by name, at most {@link FsRequest#MAX_LIST}; see
   * {@link #listing} to learn whether there were more.
   */
  public List<FsEntry> list(String dir) throws IOException {
    return listing(dir, FsRequest.MAX_LIST).entries();
  }

  /** At most {@code limit} entries of {@code dir}, and whether there were more. */
  public FsListing listing(String dir, int limit) throws IOException {
    return sandbox.withAgent(a -> a.list(dir, limit, deadline()));
  }

  /** Creates directory {@code dir} and its missing parents (no error if it exists). */
  public void mkdirs(String dir) throws IOException {
    sandbox.withAgent(
        a -> {
          a.mkdir(dir, true, deadline());
          return Boolean.TRUE;
        });
  }

  /** Removes {@code path}: a file, a link (not what it points at) or a directory with its tree. */
  public void remove(String path) throws IOException {
    sandbox.withAgent(
        a -> {
          a.remove(path, true, deadline());
          return Boolean.TRUE;
        });
  }

  /** Renames {@code from} to {@code to} atomically, replacing a file at {@code to}. */
  public void rename(String from, String to) throws IOException {
    sandbox.withAgent(
        a -> {
          a.rename(from, to, deadline());
          return Boolean.TRUE;
        });
  }

  /**
   * Watches directory {@code dir} (not its subdirectories): each entry created, modified or deleted
   * there reaches {@code listener} (on the agent's reader thread: keep it quick). Close the
   * returned watch to stop.
   */
  public SandboxWatch watch(String dir, java.util.function.Consumer<FsEvent> listener)
      throws IOException {
    return sandbox.watch(dir, listener);
  }

  private Duration deadline() {
    return sandbox.commandTimeout();
  }

  @FunctionalInterface
  private interface WithTemp<T> {
    T apply(Path tmp) throws IOException;
  }

  private static <T> T viaTemp(WithTemp<T> body) throws IOException {
    Path dir = Files.createTempDirectory("agentvm-sbx-files");
    try {
      return body.apply(dir.resolve("data"));
    } finally {
      Trees.deleteQuietly(dir);
    }
  }
}
