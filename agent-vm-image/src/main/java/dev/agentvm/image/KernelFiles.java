package dev.agentvm.image;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;

/** The kernel package's files: modules (decompressed, unsigned) and the vmlinux for PVH boot. */
final class KernelFiles {
  private KernelFiles() {}

  private static final byte[] SIG_MARKER =
      "~Module signature appended~\n".getBytes(StandardCharsets.US_ASCII);

  /**
   * Removes the signature the distribution appended to a kernel module. The kernel checks a present
   * signature on every load even when it does not enforce them, which under TCG costs ~0.2 s per
   * module; without one it loads the module and notes the kernel as tainted once.
   */
  static byte[] stripSignature(byte[] ko) {
    int n = ko.length;
    int m = SIG_MARKER.length;
    if (n < m + 12 || !java.util.Arrays.equals(ko, n - m, n, SIG_MARKER, 0, m)) {
      return ko;
    }
    // struct module_signature { u8 algo, hash, id_type, signer_len, key_id_len, pad[3]; be32
    // sig_len }
    int info = n - m - 12;
    int signerLen = ko[info + 3] & 0xFF;
    int keyIdLen = ko[info + 4] & 0xFF;
    long sigLen =
        (ko[info + 8] & 0xFFL) << 24
            | (ko[info + 9] & 0xFF) << 16
            | (ko[info + 10] & 0xFF) << 8
            | (ko[info + 11] & 0xFF);
    long keep = info - sigLen - signerLen - keyIdLen;
    if (keep <= 0) {
      return ko;
    }
    return java.util.Arrays.copyOf(ko, (int) keep);
  }

  static String plainModuleName(String path) {
    return path.replaceAll("\\.(xz|zst|gz)$", "");
  }

  static boolean supportsPvh(Path kernelRoot, String release) throws IOException {
    Path config = kernelRoot.resolve("boot/config-" + release);
    return Files.isRegularFile(config) && Files.readAllLines(config).contains("CONFIG_PVH=y");
  }

  /** Finds the compressed kernel inside a bzImage and decompresses it to the ELF vmlinux. */
  static byte[] extractVmlinux(Path bzImage, Path work) throws IOException {
    byte[] b = Files.readAllBytes(bzImage);
    String[][] formats = {{"xz", "fd377a585a00"}, {"zstd", "28b52ffd"}, {"gzip", "1f8b08"}};
    for (String[] f : formats) {
      byte[] magic = HexFormat.of().parseHex(f[1]);
      for (int at = indexOf(b, magic, 0); at >= 0; at = indexOf(b, magic, at + 1)) {
        Path slice = work.resolve("kernel-payload");
        Files.write(slice, java.util.Arrays.copyOfRange(b, at, b.length));
        byte[] out;
        try {
          out =
              f[0].equals("xz")
                  ? HostCommands.runForBytes(work, "xz", "-dc", "--single-stream", slice.toString())
                  : HostCommands.runForBytes(
                      // the path as an argument ($1), not spliced into the script: no quoting
                      work,
                      "sh",
                      "-c",
                      f[0] + " -dc < \"$1\" 2>/dev/null; true",
                      "sh",
                      slice.toString());
        } catch (ImageBuildException e) {
          continue; // a false magic match: try the next one
        }
        if (out.length > 4 && out[0] == 0x7f && out[1] == 'E' && out[2] == 'L' && out[3] == 'F') {
          return out;
        }
      }
    }
    throw new ImageBuildException("no compressed ELF kernel found inside " + bzImage);
  }

  private static int indexOf(byte[] hay, byte[] needle, int from) {
    outer:
    for (int i = from; i <= hay.length - needle.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }

  static byte[] moduleBytes(Path module, Path work) throws IOException {
    String n = PathParts.name(module);
    if (n.endsWith(".ko")) {
      return Files.readAllBytes(module);
    }
    String tool =
        n.endsWith(".xz") ? "xz" : n.endsWith(".zst") ? "zstd" : n.endsWith(".gz") ? "gzip" : null;
    if (tool == null) {
      throw new ImageBuildException("unknown module format: " + module);
    }
    return HostCommands.runForBytes(work, tool, "-dc", module.toString());
  }

  static Path findModulesBase(Path root) throws ImageBuildException {
    for (String c : List.of("lib/modules", "usr/lib/modules")) {
      if (Files.isDirectory(root.resolve(c))) {
        return root.resolve(c);
      }
    }
    throw new ImageBuildException("kernel package has no lib/modules");
  }
}
