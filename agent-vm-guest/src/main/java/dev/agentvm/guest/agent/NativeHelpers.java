package dev.agentvm.guest.agent;

/**
 * The agent's native library ({@code libagentvm-guest.so}), which the micro image builds from
 * {@code agentvm-guest.c} and names in the system property {@value #PROPERTY}. An agent without it
 * (on a user's own disk image, or in tests on the build machine) works the same, only slower where
 * it would have used it.
 */
final class NativeHelpers {
  /** The system property with the library's absolute path. */
  static final String PROPERTY = "agentvm.guest.native";

  private static volatile boolean loaded;

  private NativeHelpers() {}

  /**
   * Loads the library named by {@value #PROPERTY}, if any; logs and goes on without it when it
   * cannot be loaded. Called once at start, before any snapshot, so a restored agent never loads
   * it.
   *
   * @return whether it is loaded
   */
  static boolean load() {
    String path = System.getProperty(PROPERTY, "");
    if (path.isEmpty()) {
      return false;
    }
    try {
      System.load(path);
      loaded = true;
    } catch (LinkageError | SecurityException e) {
      GuestAgent.log(
          "native library " + path + " not loaded (" + e.getMessage() + "): going on without it");
    }
    return loaded;
  }

  static boolean isLoaded() {
    return loaded;
  }

  /** Stops using the library after a call into it failed to link. */
  static void unusable(LinkageError e) {
    loaded = false;
    GuestAgent.log("native library unusable (" + e + "): going on without it");
  }

  /**
   * {@code clock_settime(CLOCK_REALTIME)} to {@code seconds} since the epoch, nanoseconds 0.
   *
   * @return 0, or the errno of the failure
   */
  static native int setClock(long seconds);

  /**
   * Runs the file {@code program} with {@code argv} and exactly {@code envp} ("NAME=value") in
   * {@code cwd}, as the leader of a session of its own, with no descriptor of the agent but the
   * three pipes, every signal at its default and none blocked; a file the kernel cannot run (no
   * {@code #!} line) through {@code /bin/sh}, as {@code execvp} does.
   *
   * @param fds filled with the agent's ends of the child's stdin, stdout and stderr
   * @return the child's pid; the caller must reap it with {@link #waitPid}
   * @throws java.io.IOException naming the call that failed and its error
   */
  static native long spawn(
      byte[] program, byte[][] argv, byte[][] envp, byte[] cwd, java.io.FileDescriptor[] fds)
      throws java.io.IOException;

  /** Stops using the library for what comes next (tests that loaded it into a shared JVM). */
  static void forget() {
    loaded = false;
  }

  /**
   * Waits for the child {@code pid} to end, without reaping it: its pid cannot be reused until
   * {@link #reapPid}.
   *
   * @return its exit code, 128 + the signal that ended it, or -errno when it cannot be waited for
   */
  static native int waitPid(long pid);

  /**
   * Whether the child {@code pid}, not yet reaped, has ended (all its threads), without waiting or
   * reaping it.
   *
   * @return 1 or 0, or -errno when it cannot tell
   */
  static native int endedPid(long pid);

  /**
   * Reaps the ended child {@code pid}.
   *
   * @return 0, or -errno
   */
  static native int reapPid(long pid);

  /**
   * Reads into {@code buf[off, off + len)} from {@code fd}: waits for the first bytes and, when
   * they filled a page (a transfer under way: a virtio-serial port gives one page-sized buffer per
   * read), takes whatever else is queued without waiting.
   *
   * @return the count, or -1 at end of stream
   * @throws java.io.IOException naming the error
   */
  static native int readAvailable(java.io.FileDescriptor fd, byte[] buf, int off, int len)
      throws java.io.IOException;

  /**
   * A descriptor that becomes readable when the child {@code pid} has ended ({@code pidfd_open},
   * Linux 5.3 and later), to close with {@link #closeFd}.
   *
   * @return the descriptor, or -errno ({@code -ENOSYS} on an older kernel)
   */
  static native int pidfdOpen(long pid);

  /**
   * The file {@code execvp} would run for the command {@code name} with the search path {@code
   * path}, looked up from the absolute working directory {@code cwd} (relative entries and empty
   * ones, as ".", resolved against it): a regular file this process may execute, links followed.
   *
   * @return its path; empty when there is none, {@code cwd} is not a searchable directory, or an
   *     argument holds a NUL byte (the Java lookup then says what is wrong)
   */
  static native byte[] findCommand(byte[] cwd, byte[] name, byte[] path);

  /**
   * Closes {@code fd}.
   *
   * @return 0, or -errno
   */
  static native int closeFd(int fd);

  /** {@link #awaitCommand}'s bit: the command's stdout has bytes or has ended. */
  static final int STDOUT_READY = 1;

  /** {@link #awaitCommand}'s bit: the command's stderr has bytes or has ended. */
  static final int STDERR_READY = 2;

  /** {@link #awaitCommand}'s bit: the command has ended. */
  static final int ENDED = 4;

  /**
   * Waits for whichever comes first: bytes or an end on {@code out} or {@code err} (closed ones are
   * left out), the end of the process of {@code pidfd} (-1: left out), or {@code timeoutMillis}
   * (-1: none).
   *
   * @return the bits of what is ready ({@link #STDOUT_READY} and the others), 0 at the timeout or
   *     an interrupted wait, or -errno
   */
  static native int awaitCommand(
      java.io.FileDescriptor out, java.io.FileDescriptor err, int pidfd, int timeoutMillis);

  /** Bytes of the direct buffer that {@link #shaInit} and the others keep a SHA-256 in. */
  static native int shaStateSize();

  /** Starts a SHA-256 in {@code state}. */
  static native void shaInit(java.nio.ByteBuffer state);

  /** Adds {@code b[off, off + len)}, whose bounds the caller has checked. */
  static native void shaUpdate(java.nio.ByteBuffer state, byte[] b, int off, int len);

  /** Ends the SHA-256 in {@code state}, its 32 bytes into {@code digest}. */
  static native void shaFinal(java.nio.ByteBuffer state, byte[] digest);

  /**
   * SHA-256 of the file at {@code path} (links followed), its 32 bytes into {@code digest}.
   *
   * @throws java.io.IOException naming the file and the error
   */
  static native void shaFile(byte[] path, byte[] digest) throws java.io.IOException;
}
