package dev.agentvm.benchmarks;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The floor of any restore on this machine (issue 19): QEMU's own start outside libvirt, with the
 * machine, CPU model, memory and accelerator libvirt gives our domains, until its monitor answers;
 * plus reading the memory image from the page cache. A lower bound: no devices, no seccomp sandbox,
 * no change of user. What a restore costs beyond it is libvirt's, QEMU's loading and agent-vm's.
 */
final class RestoreFloor {
  private RestoreFloor() {}

  /**
   * Milliseconds from starting {@code qemu-system-x86_64 -S} (TCG, the {@code pc} machine, {@code
   * qemu64}, no default devices) to its answer to {@code qmp_capabilities}.
   */
  static double qemuStartMs(int memoryMiB) throws IOException, InterruptedException {
    List<String> cmd =
        List.of(
            "qemu-system-x86_64",
            "-machine",
            "pc,usb=off,dump-guest-core=off",
            "-accel",
            "tcg",
            "-cpu",
            "qemu64",
            "-m",
            Integer.toString(memoryMiB),
            "-smp",
            "1",
            "-display",
            "none",
            "-no-user-config",
            "-nodefaults",
            "-S",
            "-qmp",
            "stdio");
    long t0 = System.nanoTime();
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    try (BufferedReader in =
            new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        OutputStream out = p.getOutputStream()) {
      expect(in, "QMP");
      out.write("{\"execute\":\"qmp_capabilities\"}\n".getBytes(StandardCharsets.UTF_8));
      out.flush();
      expect(in, "return");
      double ms = Stats.ms(System.nanoTime() - t0);
      out.write("{\"execute\":\"quit\"}\n".getBytes(StandardCharsets.UTF_8));
      out.flush();
      if (!p.waitFor(10, TimeUnit.SECONDS)) {
        p.destroyForcibly();
      }
      return ms;
    } finally {
      p.destroyForcibly();
      p.waitFor();
    }
  }

  private static void expect(BufferedReader in, String word) throws IOException {
    for (String l = in.readLine(); l != null; l = in.readLine()) {
      if (l.contains(word)) {
        return;
      }
    }
    throw new IOException("QEMU ended before it said " + word);
  }

  /**
   * Milliseconds to read {@code file} once it is in the page cache (read twice, the second timed).
   */
  static double pageCacheReadMs(Path file) throws IOException {
    readAll(file);
    long t0 = System.nanoTime();
    readAll(file);
    return Stats.ms(System.nanoTime() - t0);
  }

  private static void readAll(Path file) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      while (ch.read(buf) >= 0) {
        buf.clear();
      }
    }
  }
}
