package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.FsEntry;
import dev.agentvm.protocol.FsListing;
import dev.agentvm.protocol.FsRequest;
import dev.agentvm.protocol.ProtocolException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;

/** FS_OP: stat, list, mkdir, remove and rename on guest paths, with java.nio only. */
final class FileOps {
  /** A LIST answer stops adding entries once its payload reaches this size (frames hold 1 MiB). */
  static final int LIST_PAYLOAD_BUDGET = 900 * 1024;

  private FileOps() {}

  /** Runs {@code q} and returns the answer's payload. */
  static byte[] run(FsRequest q) throws IOException {
    Path path = FileTransfer.checkedPath(q.path());
    String what = q.op().name().toLowerCase(java.util.Locale.ROOT) + " of " + path;
    try {
      return switch (q.op()) {
        case STAT -> entry(path, path.toString()).encode();
        case LIST -> list(path, q.limit()).encode();
        case MKDIR -> {
          if ((q.flags() & FsRequest.RECURSIVE) != 0) {
            Files.createDirectories(path);
          } else {
            Files.createDirectory(path);
          }
          yield new byte[0];
        }
        case REMOVE -> {
          if ((q.flags() & FsRequest.RECURSIVE) != 0) {
            removeTree(path);
          } else {
            Files.delete(path);
          }
          yield new byte[0];
        }
        case RENAME -> {
          Path target = FileTransfer.checkedPath(q.target());
          Files.move(path, target, StandardCopyOption.ATOMIC_MOVE);
          yield new byte[0];
        }
      };
    } catch (java.nio.file.FileAlreadyExistsException e) {
      throw new ProtocolException(ErrorCode.ALREADY_EXISTS, what + ": " + e.getFile() + " exists");
    } catch (java.nio.file.DirectoryNotEmptyException e) {
      throw new ProtocolException(
          ErrorCode.NOT_EMPTY, what + ": the directory is not empty (remove it recursively)");
    } catch (IOException e) {
      throw UserErrors.translate(e, what);
    }
  }

  static FsEntry entry(Path p, String name) throws IOException {
    PosixFileAttributes a =
        Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
    FsEntry.Kind kind =
        a.isSymbolicLink()
            ? FsEntry.Kind.SYMLINK
            : a.isDirectory()
                ? FsEntry.Kind.DIRECTORY
                : a.isRegularFile() ? FsEntry.Kind.FILE : FsEntry.Kind.OTHER;
    return new FsEntry(
        name, kind, Math.max(0, a.size()), mode(a.permissions()), a.lastModifiedTime().toMillis());
  }

  private static int mode(Set<PosixFilePermission> perms) {
    int m = 0;
    for (PosixFilePermission p : perms) {
      m |= FileTransfer.bit(p);
    }
    return m;
  }

  private static FsListing list(Path dir, int limit) throws IOException {
    if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
      if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
        throw new java.nio.file.NoSuchFileException(dir.toString());
      }
      throw new ProtocolException(
          ErrorCode.NOT_A_DIRECTORY, "list of " + dir + ": not a directory");
    }
    TreeMap<String, Path> sorted = new TreeMap<>();
    boolean truncated = false;
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
      for (Path p : s) {
        Path n = p.getFileName();
        if (n != null) {
          sorted.put(n.toString(), p);
        }
      }
    }
    List<FsEntry> entries = new ArrayList<>();
    int bytes = 5;
    for (var e : sorted.entrySet()) {
      if (entries.size() == limit) {
        truncated = true;
        break;
      }
      int size = 4 + e.getKey().getBytes(StandardCharsets.UTF_8).length + 1 + 8 + 4 + 8;
      if (bytes + size > LIST_PAYLOAD_BUDGET) {
        truncated = true;
        break;
      }
      try {
        entries.add(entry(e.getValue(), e.getKey()));
        bytes += size;
      } catch (java.nio.file.NoSuchFileException gone) {
        // removed while listing: not an entry any more
      }
    }
    return new FsListing(entries, truncated);
  }

  private static void removeTree(Path root) throws IOException {
    if (!Files.isDirectory(root, LinkOption.NOFOLLOW_LINKS)) {
      Files.delete(root);
      return;
    }
    // walkFileTree does not follow links: a link inside is removed, never what it points at
    Files.walkFileTree(
        root,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
              throws IOException {
            Files.delete(file);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
            if (e != null) {
              throw e;
            }
            Files.delete(d);
            return FileVisitResult.CONTINUE;
          }
        });
  }
}
