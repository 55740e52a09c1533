package dev.agentvm.image;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** Runs the host tools the image build needs (apt, dpkg-deb, depmod, ldd, xz, mkfs...). */
final class HostCommands {
  private HostCommands() {}

  /** Runs {@code cmd} in {@code dir}; fails with its exit code and standard error. */
  static void run(Path dir, String... cmd) throws IOException {
    runForBytes(dir, cmd);
  }

  /** Runs {@code cmd} in {@code dir} and returns its standard output (10 minutes at most). */
  static byte[] runForBytes(Path dir, String... cmd) throws IOException {
    Path err = Files.createTempFile("agentvm-cmd-", ".err");
    Path outFile = Files.createTempFile("agentvm-cmd-", ".out");
    try {
      Process p =
          new ProcessBuilder(cmd)
              .directory(dir.toFile())
              .redirectOutput(outFile.toFile())
              .redirectError(err.toFile())
              .start();
      p.getOutputStream().close();
      // the output goes to a file, so the deadline below holds even when the command never ends
      if (!p.waitFor(10, TimeUnit.MINUTES)) {
        p.destroyForcibly();
        throw new ImageBuildException(String.join(" ", cmd) + " did not finish in 10 minutes");
      }
      if (p.exitValue() != 0) {
        throw new ImageBuildException(
            String.join(" ", cmd)
                + " failed with exit code "
                + p.exitValue()
                + ": "
                + Files.readString(err).trim());
      }
      return Files.readAllBytes(outFile);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ImageBuildException("interrupted while running " + cmd[0], e);
    } catch (java.io.IOException e) {
      if (e instanceof ImageBuildException) {
        throw e;
      }
      throw new ImageBuildException(
          "cannot run "
              + cmd[0]
              + " (is it installed? scripts/setup-host.sh installs it): "
              + e.getMessage(),
          e);
    } finally {
      Files.deleteIfExists(err);
      Files.deleteIfExists(outFile);
    }
  }
}
