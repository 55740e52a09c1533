package dev.agentvm.storage;

/**
 * How much {@link FilesystemShare#extractOutput} takes out of a guest's output directory.
 *
 * @param maxFiles regular files, at least 1
 * @param maxTotalBytes bytes over all files, at least 1
 * @param maxFileBytes bytes of any one file, at least 1
 */
public record OutputLimits(int maxFiles, long maxTotalBytes, long maxFileBytes) {
  /** 10 000 files, 1 GiB in all, 512 MiB per file. */
  public static final OutputLimits DEFAULT = new OutputLimits(10_000, 1L << 30, 512L << 20);

  public OutputLimits {
    if (maxFiles < 1) {
      throw new IllegalArgumentException("maxFiles must be >= 1, was " + maxFiles);
    }
    if (maxTotalBytes < 1) {
      throw new IllegalArgumentException("maxTotalBytes must be >= 1, was " + maxTotalBytes);
    }
    if (maxFileBytes < 1) {
      throw new IllegalArgumentException("maxFileBytes must be >= 1, was " + maxFileBytes);
    }
  }
}
