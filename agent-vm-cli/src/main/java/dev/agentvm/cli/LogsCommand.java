package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.internal.AgentVmPaths;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** A VM's serial console, as the hypervisor wrote it. */
@Command(
    name = "logs",
    mixinStandardHelpOptions = true,
    description =
        "Print a VM's console log (a sandbox's VM has the sandbox's id): from the run directory its"
            + " domain names, else this user's.")
final class LogsCommand implements Callable<Integer> {
  @Mixin Options opts = new Options();

  @Parameters(paramLabel = "VM", description = "the VM's name")
  String vm = "";

  @CommandLine.Option(
      names = "--tail",
      description = "only the last N bytes (default: all, at most " + MAX_BYTES + ")")
  long tail = -1;

  @CommandLine.Option(
      names = "--raw",
      description =
          "the bytes as the guest wrote them, escape sequences included; by default control"
              + " characters are shown as \\xNN, so that a guest cannot drive your terminal")
  boolean raw;

  /** The most printed at once: a guest can write a console log without end. */
  static final int MAX_BYTES = 64 << 20;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  /** Where the console logs go: System.out, or a test's stream. */
  OutputStream sink = System.out;

  @Override
  public Integer call() throws IOException {
    if (!vm.matches("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")) {
      spec.commandLine().getErr().println("not a VM name: " + vm);
      return 1;
    }
    int max = (int) (tail >= 0 ? Math.min(tail, MAX_BYTES) : MAX_BYTES);
    Optional<byte[]> bytes = fromHypervisor(max);
    if (bytes.isEmpty()) {
      Path log = AgentVmPaths.runDir(vm).resolve("console.log");
      if (!Files.isRegularFile(log, LinkOption.NOFOLLOW_LINKS)) {
        spec.commandLine().getErr().println("no console log for " + vm + " (" + log + ")");
        return 1;
      }
      bytes = Optional.of(tailOf(log, max));
    }
    sink.write(raw ? bytes.get() : escaped(bytes.get()));
    sink.flush();
    return 0;
  }

  /** The log the VM's domain names, read through libvirt (also from a remote host). */
  private Optional<byte[]> fromHypervisor(int max) {
    try (LibvirtConnection conn = opts.connect()) {
      return conn.backend().lookup(vm).flatMap(d -> d.consoleTail(max));
    } catch (RuntimeException e) {
      return Optional.empty();
    }
  }

  /** Not through a link: a directory QEMU can write to must not make this print another file. */
  private static byte[] tailOf(Path log, int max) throws IOException {
    try (InputStream in = Files.newInputStream(log, LinkOption.NOFOLLOW_LINKS)) {
      long size = Files.size(log);
      if (size > max) {
        in.skipNBytes(size - max);
      }
      return in.readNBytes(max);
    }
  }

  /**
   * The text with every control character but newline and tab shown as {@code \xNN} (or {@code
   * <U+NNNN>} beyond Latin-1's), so that a guest cannot drive the operator's terminal; bytes that
   * are not UTF-8 become U+FFFD.
   */
  static byte[] escaped(byte[] guestBytes) {
    String text = new String(guestBytes, StandardCharsets.UTF_8);
    StringBuilder b = new StringBuilder(text.length());
    text.codePoints()
        .forEach(
            cp -> {
              if (cp == '\n' || cp == '\t' || !(Character.isISOControl(cp) || isFormat(cp))) {
                b.appendCodePoint(cp);
              } else if (cp <= 0xff) {
                b.append(String.format("\\x%02x", cp));
              } else {
                b.append(String.format("<U+%04X>", cp));
              }
            });
    return b.toString().getBytes(StandardCharsets.UTF_8);
  }

  /** Invisible characters that reorder or hide text (bidi overrides and the like). */
  private static boolean isFormat(int cp) {
    return Character.getType(cp) == Character.FORMAT;
  }
}
