package dev.agentvm.storage;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Runs the host tools storage needs ({@code qemu-img}, {@code mkfs.ext4}) with a deadline. */
final class Tools {
  private Tools() {}

  /**
   * Runs a command and returns its standard output.
   *
   * @throws StorageException if it cannot start, fails or outlives the timeout (it is then killed)
   */
  static String run(List<String> cmd, Duration timeout) {
    Process p;
    try {
      p = new ProcessBuilder(cmd).redirectInput(new java.io.File("/dev/null")).start();
    } catch (IOException e) {
      throw new StorageException(
          "cannot run " + cmd.get(0) + " (is it installed? scripts/setup-host.sh): " + e, e);
    }
    CompletableFuture<String> out = drain(p.getInputStream());
    CompletableFuture<String> err = drain(p.getErrorStream());
    try {
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        p.waitFor(5, TimeUnit.SECONDS);
        throw new StorageException(
            String.join(" ", cmd) + " did not finish within " + timeout.toMillis() + " ms");
      }
      if (p.exitValue() != 0) {
        throw new StorageException(
            String.join(" ", cmd) + " failed (exit " + p.exitValue() + "): " + err.join().trim());
      }
      return out.join();
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new StorageException("interrupted running " + cmd.get(0), e);
    }
  }

  private static CompletableFuture<String> drain(InputStream in) {
    return CompletableFuture.supplyAsync(
        () -> {
          try (in) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
          } catch (IOException e) {
            return "";
          }
        });
  }
}
