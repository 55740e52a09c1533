package dev.agentvm.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** SHA-256, as lower-case hex (the form the protocol and the caches use). */
public final class Hashing {
  private Hashing() {}

  /** A fresh SHA-256 digest (every JDK has it). */
  public static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is missing from this JDK", e);
    }
  }

  /** Lower-case hex of {@code bytes}. */
  public static String hex(byte[] bytes) {
    return HexFormat.of().formatHex(bytes);
  }

  /** SHA-256 of {@code bytes} as lower-case hex. */
  public static String sha256Hex(byte[] bytes) {
    return hex(sha256().digest(bytes));
  }

  /** SHA-256 of a file's content as lower-case hex, read in 64 KiB blocks. */
  public static String sha256Hex(Path file) throws IOException {
    MessageDigest md = sha256();
    byte[] buf = new byte[64 * 1024];
    try (InputStream in = Files.newInputStream(file)) {
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
    }
    return hex(md.digest());
  }
}
