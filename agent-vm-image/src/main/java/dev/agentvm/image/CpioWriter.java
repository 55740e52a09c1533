package dev.agentvm.image;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes a cpio archive in the "newc" format the Linux kernel unpacks as an initramfs. Owners are
 * always root; times are 0 so that equal inputs give equal bytes.
 */
final class CpioWriter implements AutoCloseable {
  private static final int S_IFDIR = 0040000;
  private static final int S_IFREG = 0100000;
  private static final int S_IFLNK = 0120000;
  private static final int S_IFCHR = 0020000;

  private final OutputStream out;
  private long written;
  private int ino = 1;

  CpioWriter(OutputStream out) {
    this.out = out;
  }

  void directory(String name, int perm) throws IOException {
    header(name, S_IFDIR | perm, 0, 0, 0);
  }

  void symlink(String name, String target) throws IOException {
    byte[] t = target.getBytes(StandardCharsets.UTF_8);
    header(name, S_IFLNK | 0777, t.length, 0, 0);
    write(t, t.length);
  }

  void charDevice(String name, int perm, int major, int minor) throws IOException {
    header(name, S_IFCHR | perm, 0, major, minor);
  }

  void file(String name, int perm, byte[] content) throws IOException {
    header(name, S_IFREG | perm, content.length, 0, 0);
    write(content, content.length);
  }

  void file(String name, int perm, Path source) throws IOException {
    long size = Files.size(source);
    header(name, S_IFREG | perm, size, 0, 0);
    try (InputStream in = Files.newInputStream(source)) {
      long copied = in.transferTo(out);
      if (copied != size) {
        throw new IOException(source + " changed size while archiving");
      }
      written += copied;
    }
    pad();
  }

  private void header(String name, int mode, long size, int rdevMajor, int rdevMinor)
      throws IOException {
    if (size > 0xFFFFFFFFL) {
      throw new IOException(name + " is too large for a newc cpio archive");
    }
    byte[] n = (name + "\0").getBytes(StandardCharsets.UTF_8);
    StringBuilder h = new StringBuilder(110).append("070701");
    for (long v :
        new long[] {ino++, mode, 0, 0, 1, 0, size, 0, 0, rdevMajor, rdevMinor, n.length, 0}) {
      h.append(String.format("%08x", v));
    }
    byte[] hb = h.toString().getBytes(StandardCharsets.US_ASCII);
    out.write(hb);
    written += hb.length;
    write(n, n.length);
  }

  private void write(byte[] b, int len) throws IOException {
    out.write(b, 0, len);
    written += len;
    pad();
  }

  private void pad() throws IOException {
    while (written % 4 != 0) {
      out.write(0);
      written++;
    }
  }

  @Override
  public void close() throws IOException {
    header("TRAILER!!!", 0, 0, 0, 0);
    out.close();
  }
}
