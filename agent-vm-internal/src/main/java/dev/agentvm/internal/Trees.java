package dev.agentvm.internal;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import org.jspecify.annotations.Nullable;

/** Directory trees on the host. */
public final class Trees {
  private Trees() {}

  /**
   * Deletes {@code root} and everything below it; symbolic links are deleted, never followed.
   * Nothing to do if it does not exist. Memory use grows with the tree's depth, not with the number
   * of entries (the tree is walked, never listed whole).
   */
  public static void delete(Path root) throws IOException {
    if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    Files.walkFileTree(
        root,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
              throws IOException {
            Files.deleteIfExists(file);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
            if (e instanceof NoSuchFileException) {
              return FileVisitResult.CONTINUE; // removed meanwhile: what we wanted
            }
            // an unreadable entry may still be removable (a socket, a file we may not stat)
            Files.deleteIfExists(file);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
            if (e != null && !(e instanceof NoSuchFileException)) {
              throw e;
            }
            Files.deleteIfExists(dir);
            return FileVisitResult.CONTINUE;
          }
        });
  }

  /**
   * {@link #delete} for cleanup paths that must go on: returns the failure instead of throwing, or
   * {@code null} when the tree is gone.
   */
  public static @Nullable IOException deleteQuietly(Path root) {
    try {
      delete(root);
      return null;
    } catch (IOException e) {
      return e;
    }
  }
}
