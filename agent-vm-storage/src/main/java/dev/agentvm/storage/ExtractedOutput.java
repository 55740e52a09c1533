package dev.agentvm.storage;

import java.nio.file.Path;
import java.util.List;

/**
 * What {@link FilesystemShare#extractOutput} copied out.
 *
 * @param directory where the files now are
 * @param files the regular files, relative paths with '/' separators, sorted
 * @param skipped entries not copied and why (symbolic links, devices, pipes): never followed
 * @param totalBytes bytes over all files
 */
public record ExtractedOutput(
    Path directory, List<File> files, List<String> skipped, long totalBytes) {
  public ExtractedOutput {
    files = List.copyOf(files);
    skipped = List.copyOf(skipped);
  }

  /**
   * One extracted file.
   *
   * @param path relative to the output directory, '/' separated
   * @param size bytes
   * @param sha256 lowercase hex SHA-256 of the content
   */
  public record File(String path, long size, String sha256) {}
}
