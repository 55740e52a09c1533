package dev.agentvm.storage;

/**
 * How much {@link FilesystemShare#extractOutput} takes out of a guest's output directory. Every
 * number bounds what the guest can make the host spend: bytes written, files created, entries
 * looked at, directory depth.
 *
 * @param maxFiles regular files, at least 1
 * @param maxTotalBytes bytes over all files, at least 1
 * @param maxFileBytes bytes of any one file, at least 1
 * @param maxEntries entries of any kind (files, directories, links, devices...), at least 1
 * @param maxDepth directory levels below the output directory, at least 1
 */
public record OutputLimits(
    int maxFiles, long maxTotalBytes, long maxFileBytes, int maxEntries, int maxDepth) {
  /** Default entries of any kind. */
  public static final int DEFAULT_MAX_ENTRIES = 100_000;

  /** Default directory depth (deeper trees are refused, not walked). */
  public static final int DEFAULT_MAX_DEPTH = 64;

  /** 10 000 files, 1 GiB in all, 512 MiB per file, 100 000 entries, 64 levels. */
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
    if (maxEntries < 1) {
      throw new IllegalArgumentException("maxEntries must be >= 1, was " + maxEntries);
    }
    if (maxDepth < 1) {
      throw new IllegalArgumentException("maxDepth must be >= 1, was " + maxDepth);
    }
  }

  /** Limits on files and bytes, with the default entry and depth limits. */
  public OutputLimits(int maxFiles, long maxTotalBytes, long maxFileBytes) {
    this(
        maxFiles,
        maxTotalBytes,
        maxFileBytes,
        Math.max(DEFAULT_MAX_ENTRIES, maxFiles),
        DEFAULT_MAX_DEPTH);
  }
}
