package dev.agentvm.execution.sandbox;

import dev.agentvm.internal.Trees;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.FsEntry;
import dev.agentvm.protocol.FsEvent;
import dev.agentvm.protocol.FsListing;
import dev.agentvm.protocol.FsRequest;
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
