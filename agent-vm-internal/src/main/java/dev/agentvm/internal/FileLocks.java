package dev.agentvm.internal;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * Exclusive locks that hold across threads and processes: a JVM monitor per lock file, then an
 * exclusive {@link FileLock} on it.
 *
 * <p>Both are needed: a {@code FileChannel} lock belongs to the whole JVM, so a second thread's
 * {@code lock()} throws {@code OverlappingFileLockException} instead of waiting; the monitor makes
 * threads queue first. Every user of one lock file must come through here, or the monitor is not
 * shared.
 */
public final class FileLocks {
  private static final ConcurrentMap<Path, Object> MONITORS = new ConcurrentHashMap<>();

  private FileLocks() {}

  /** Work done under a lock. */
  @FunctionalInterface
  public interface Locked<T> {
    T run() throws IOException;
  }

  /**
   * Runs {@code body} while holding the lock on {@code lockFile} (created with its parent
   * directories if absent; never deleted, so that every process locks the same inode).
   */
  public static <T> T withLock(Path lockFile, Locked<T> body) throws IOException {
    Path key = lockFile.toAbsolutePath().normalize();
    synchronized (MONITORS.computeIfAbsent(key, k -> new Object())) {
      Path dir = key.getParent();
      if (dir != null) { // null only for the root directory, which open() then refuses
        Files.createDirectories(dir);
      }
      try (FileChannel ch =
          FileChannel.open(key, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
        FileLock lock = ch.lock();
        try {
          return body.run();
        } finally {
          lock.release(); // closing the channel would release it too; this says when
        }
      }
    }
  }
}
