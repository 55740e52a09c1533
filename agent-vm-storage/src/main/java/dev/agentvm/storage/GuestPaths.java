package dev.agentvm.storage;

import java.nio.file.Path;

/** Validation of relative paths that name files in a workspace. */
public final class GuestPaths {
  private GuestPaths() {}

  /**
   * Checks that {@code relative} names a file below a directory and cannot leave it (the rules of
   * {@link #resolve}); returns it.
   *
   * @throws IllegalArgumentException if it could leave it
   */
  public static String requireRelative(String relative) {
    segments(relative);
    return relative;
  }

  /**
   * Resolves {@code relative} under {@code root}, refusing anything that could leave it.
   *
   * @throws IllegalArgumentException for empty, absolute, {@code ..}, {@code .}, empty-segment or
   *     NUL-containing names, or segments over 255 bytes
   */
  static Path resolve(Path root, String relative) {
    Path p = root;
    for (String seg : segments(relative)) {
      p = p.resolve(seg);
    }
    if (!p.normalize().startsWith(root)) {
      throw new IllegalArgumentException("path leaves the workspace: " + relative);
    }
    return p;
  }

  /** The segments of {@code relative}, each checked. */
  private static String[] segments(String relative) {
    if (relative == null || relative.isEmpty()) {
      throw new IllegalArgumentException("path must not be empty");
    }
    if (relative.indexOf('\0') >= 0) {
      throw new IllegalArgumentException(
          "path must not contain NUL: " + relative.replace('\0', '?'));
    }
    if (relative.startsWith("/")) {
      throw new IllegalArgumentException("path must be relative, was " + relative);
    }
    String[] segs = relative.split("/", -1);
    for (String seg : segs) {
      if (seg.isEmpty() || seg.equals(".") || seg.equals("..")) {
        throw new IllegalArgumentException(
            "path must not contain empty, '.' or '..' segments, was " + relative);
      }
      if (seg.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 255) {
        throw new IllegalArgumentException("path segment over 255 bytes in " + relative);
      }
    }
    return segs;
  }
}
