package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ProtocolException;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Failures of a request that are the user's to fix (a missing directory, a command not on PATH, a
 * full disk), told in the user's terms with their own {@link ErrorCode}, instead of {@code
 * INTERNAL} and a Java exception's text.
 */
final class UserErrors {
  private UserErrors() {}

  static ProtocolException error(ErrorCode code, String message) {
    return new ProtocolException(code, message);
  }

  /**
   * Translates a file system failure while doing {@code what} (e.g. "writing /data/x") into an
   * error in the user's terms (a {@link ProtocolException}); {@code e} itself when it is none of
   * those (an agent failure).
   */
  static IOException translate(IOException e, String what) {
    if (e instanceof ProtocolException p) {
      return p;
    }
    String file = e instanceof FileSystemException f && f.getFile() != null ? f.getFile() : null;
    String reason =
        e instanceof FileSystemException f && f.getReason() != null
            ? f.getReason()
            : String.valueOf(e.getMessage());
    String on = what + (file == null ? "" : ": " + file);
    if (e instanceof NoSuchFileException) {
      return error(ErrorCode.NOT_FOUND, on + " does not exist");
    }
    if (e instanceof AccessDeniedException
        || reason.contains("Permission denied")
        || reason.contains("Operation not permitted")) {
      return error(ErrorCode.PERMISSION_DENIED, on + ": permission denied");
    }
    if (reason.contains("Read-only file system")) {
      return error(ErrorCode.PERMISSION_DENIED, on + ": read-only file system");
    }
    if (e instanceof NotDirectoryException
        || e instanceof FileAlreadyExistsException
        || reason.contains("Not a directory")) {
      // createDirectories: a component of the path exists and is not a directory
      return error(ErrorCode.NOT_A_DIRECTORY, on + ": a parent is not a directory");
    }
    if (e instanceof DirectoryNotEmptyException || reason.contains("Is a directory")) {
      return error(ErrorCode.IS_A_DIRECTORY, on + " is a directory");
    }
    if (reason.contains("No space left on device") || reason.contains("Disk quota exceeded")) {
      return error(ErrorCode.NO_SPACE, what + ": No space left on device in the guest");
    }
    return e;
  }

  /**
   * Checks an EXEC's working directory and command before starting it, as {@code execvp} will look
   * for it, so that a typo is reported as such rather than as a failure to start {@code setsid}.
   *
   * @param cwd the working directory the command will run in
   * @param argv the command and its arguments (none may hold a NUL byte)
   * @param env the environment the command gets (its PATH, if set, is the one searched)
   * @return the file {@code execvp} would run, absolute
   */
  static Path checkExec(Path cwd, List<String> argv, Map<String, String> env)
      throws ProtocolException {
    String argv0 = argv.get(0);
    for (int i = 1; i < argv.size(); i++) {
      if (argv.get(i).indexOf('\0') >= 0) {
        throw error(ErrorCode.MALFORMED_PAYLOAD, "argument " + i + " holds a NUL byte");
      }
    }
    for (Map.Entry<String, String> v : env.entrySet()) {
      String name = v.getKey();
      if (name.isEmpty() || name.indexOf('=') >= 0 || name.indexOf('\0') >= 0) {
        throw error(
            ErrorCode.MALFORMED_PAYLOAD,
            "environment variable name '" + name + "' is empty or holds '=' or a NUL byte");
      }
      if (v.getValue().indexOf('\0') >= 0) {
        throw error(
            ErrorCode.MALFORMED_PAYLOAD, "environment variable " + name + " holds a NUL byte");
      }
    }
    String path = env.getOrDefault("PATH", System.getenv("PATH"));
    if (path == null) {
      path = "/bin:/usr/bin"; // execvp's default
    }
    Optional<Path> found = findNatively(cwd, argv0, path);
    return found.isPresent() ? found.get() : lookUp(cwd, argv0, path);
  }

  /**
   * The Java lookup of {@link #checkExec}: the file to run, or the error that says why there is
   * none.
   */
  static Path lookUp(Path cwd, String argv0, String path) throws ProtocolException {
    // java.io.File's probes: one stat or access each and a boolean, where Files' throw (and fill
    // in) an exception for every missing file
    File dir = cwd.toFile();
    if (!dir.isDirectory()) {
      if (!dir.exists()) {
        throw error(ErrorCode.NOT_FOUND, "working directory " + cwd + " does not exist");
      }
      throw error(ErrorCode.NOT_A_DIRECTORY, "working directory " + cwd + " is not a directory");
    }
    if (!dir.canExecute()) {
      throw error(ErrorCode.PERMISSION_DENIED, "working directory " + cwd + ": permission denied");
    }
    if (argv0.isEmpty() || argv0.indexOf('\0') >= 0) {
      throw error(ErrorCode.COMMAND_NOT_FOUND, "empty command name");
    }
    if (argv0.indexOf('/') >= 0) {
      Path p = cwd.resolve(argv0);
      File f = p.toFile();
      if (!f.exists()) {
        throw error(ErrorCode.COMMAND_NOT_FOUND, "command " + argv0 + " does not exist");
      }
      if (!isExecutableFile(f)) {
        throw error(
            ErrorCode.NOT_EXECUTABLE,
            "command " + argv0 + (f.isDirectory() ? " is a directory" : " is not executable"));
      }
      return p.toAbsolutePath();
    }
    String[] dirs = path.split(":", -1);
    for (String d : dirs) {
      Path p = candidate(cwd, d, argv0);
      if (isExecutableFile(p.toFile())) {
        return p.toAbsolutePath();
      }
    }
    // not found: name the first candidate that exists but cannot run, as execvp would fail on it
    for (String d : dirs) {
      Path p = candidate(cwd, d, argv0);
      File f = p.toFile();
      if (f.exists() && !f.isDirectory()) {
        throw error(
            ErrorCode.NOT_EXECUTABLE, "command " + argv0 + " found at " + p + " is not executable");
      }
    }
    throw error(
        ErrorCode.COMMAND_NOT_FOUND, "command " + argv0 + " not found on PATH (" + path + ")");
  }

  /**
   * The command found by the native library in one call (a command's lookup on every EXEC, where
   * {@link #lookUp} pays a stat and several objects per directory in the interpreter); empty
   * without the library, or when there is nothing to run: then the Java lookup says what is wrong.
   */
  static Optional<Path> findNatively(Path cwd, String argv0, String path) {
    if (!NativeHelpers.isLoaded()) {
      return Optional.empty();
    }
    try {
      byte[] found =
          NativeHelpers.findCommand(
              cwd.toString().getBytes(StandardCharsets.UTF_8),
              argv0.getBytes(StandardCharsets.UTF_8),
              path.getBytes(StandardCharsets.UTF_8));
      return found.length == 0
          ? Optional.empty()
          : Optional.of(Path.of(new String(found, StandardCharsets.UTF_8)));
    } catch (LinkageError e) {
      NativeHelpers.unusable(e);
      return Optional.empty();
    }
  }

  private static Path candidate(Path cwd, String dir, String argv0) {
    return cwd.resolve(dir.isEmpty() ? "." : dir).resolve(argv0);
  }

  private static boolean isExecutableFile(File f) {
    return f.isFile() && f.canExecute();
  }
}
