package dev.agentvm.core;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestPlan;

/**
 * Runs the real-VM integration tests of one module at a time when Maven builds modules in parallel
 * ({@code -T 2}): two modules booting TCG guests on two cores at once would stretch every deadline
 * the tests keep, while compiling, unit tests and static analysis of one module overlap well with
 * another's VM tests. Failsafe sets {@code agentvm.test.vmLock} to a file under the build's root;
 * the test plan takes an exclusive lock on it and releases it when it ends (the lock also goes with
 * the JVM). Surefire does not set it, so unit tests never wait. A second test plan in the same JVM
 * counts rather than locks again. The lock is per checkout (two checkouts building at once are not
 * kept apart). If the lock cannot be taken the JVM halts: JUnit only logs a listener's exception,
 * and VM tests running unlocked would reap the other module's test VMs.
 */
public final class VmTestLock implements TestExecutionListener {
  /** The system property naming the lock file. */
  public static final String PROPERTY = "agentvm.test.vmLock";

  private static final Object MONITOR = new Object();
  private static int depth;
  private static FileChannel channel;
  private static FileLock lock;

  @Override
  public void testPlanExecutionStarted(TestPlan plan) {
    String where = System.getProperty(PROPERTY);
    if (where == null || where.isBlank()) {
      return;
    }
    synchronized (MONITOR) {
      if (depth++ > 0) {
        return;
      }
      Path file = Path.of(where);
      try {
        Files.createDirectories(file.toAbsolutePath().getParent());
        channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        lock = channel.tryLock();
        if (lock == null) {
          long t0 = System.nanoTime();
          System.out.println("[vm-tests] waiting for another module's VM tests (" + file + ")");
          lock = channel.lock();
          System.out.printf(
              "[vm-tests] waited %d s for the VM test lock%n",
              (System.nanoTime() - t0) / 1_000_000_000L);
        }
      } catch (IOException | RuntimeException e) {
        System.out.println("[vm-tests] cannot take the VM test lock " + file + ": " + e);
        System.out.flush();
        Runtime.getRuntime().halt(70);
      }
    }
  }

  @Override
  public void testPlanExecutionFinished(TestPlan plan) {
    if (System.getProperty(PROPERTY) == null) {
      return;
    }
    synchronized (MONITOR) {
      if (depth == 0 || --depth > 0) {
        return;
      }
      try {
        if (lock != null) {
          lock.release();
        }
        if (channel != null) {
          channel.close();
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      } finally {
        lock = null;
        channel = null;
      }
    }
  }
}
