package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;

/**
 * The host-to-agent direction of an in-process agent's channel. With the native library loaded, a
 * FIFO that the serving thread reads itself through a {@link StallGuard} bounded by {@code poll},
 * as the agent reads its port in the guest; without it, a pipe read by the guard's thread.
 *
 * @param toAgent the host's end: closing it ends the agent's stream
 * @param fromHost the agent's end
 */
record TestPort(OutputStream toAgent, StallGuard fromHost) {
  /** A port whose stalled frames are given up after {@code stallMillis} and {@code frameMillis}. */
  static TestPort open(long stallMillis, long frameMillis) throws Exception {
    if (!NativeHelpers.isLoaded()) {
      PipedInputStream in = new PipedInputStream(1 << 20);
      OutputStream out = new PipedOutputStream(in);
      return new TestPort(out, new StallGuard(in, 20, stallMillis, frameMillis));
    }
    Path dir = Files.createTempDirectory("agentvm-test-port");
    Path fifo = dir.resolve("port");
    try {
      assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
      CompletableFuture<InputStream> reading = new CompletableFuture<>();
      Thread opener = // each end's open waits for the other's
          new Thread(
              () -> {
                try {
                  reading.complete(new FileInputStream(fifo.toFile()));
                } catch (IOException e) {
                  reading.completeExceptionally(e);
                }
              });
      opener.setDaemon(true);
      opener.start();
      OutputStream out = new FileOutputStream(fifo.toFile());
      FileInputStream in = (FileInputStream) reading.get(10, java.util.concurrent.TimeUnit.SECONDS);
      return new TestPort(out, new StallGuard(in.getFD(), stallMillis, frameMillis));
    } finally {
      Files.deleteIfExists(fifo); // both ends are open
      Files.delete(dir);
    }
  }
}
