package dev.agentvm.image;

import java.nio.file.Path;

/**
 * The parts of paths the image build makes or lists itself (directory entries, files in its work
 * directories), where {@link Path#getFileName()} and {@link Path#getParent()} are null only for a
 * root: that would be a bug here, so it fails loudly instead of passing a null on.
 */
final class PathParts {
  private PathParts() {}

  /** The last name of {@code p}, e.g. of a directory entry. */
  static String name(Path p) {
    Path name = p.getFileName();
    if (name == null) {
      throw new IllegalArgumentException("path has no file name: " + p);
    }
    return name.toString();
  }

  /** The directory that holds {@code p}. */
  static Path parent(Path p) {
    Path parent = p.getParent();
    if (parent == null) {
      throw new IllegalArgumentException("path has no parent: " + p);
    }
    return parent;
  }
}
