package dev.agentvm.core.internal.libvirt;

import dev.agentvm.core.SnapshotException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * The domain XML embedded in a libvirt QEMU save image, rewritten in place.
 *
 * <p>libvirt refuses to restore a save image under another UUID or generation id when a new XML is
 * passed to {@code virDomainRestoreFlags}, which is exactly what a clone needs. Without a new XML
 * it uses the one in the image, unchecked. So a clone's definition is written into the image's
 * header first. Layout (libvirt 9.0, {@code qemu_saveimage.h}; native byte order):
 *
 * <pre>
 *   0  char[16] magic "LibvirtQemudSave"
 *  16  u32 version (2)   20 u32 data_len   24 u32 was_running   28 u32 compressed
 *  32  u32 cookieOffset  36 u32[14] unused
 *  92  data_len bytes: XML, NUL, [cookie XML, NUL at cookieOffset], zero padding (libvirt leaves
 *      64 KiB for edits)
 *  92 + data_len: QEMU's migration stream
 * </pre>
 *
 * Callers serialise rewrites and restores of one image (a file lock).
 */
final class SaveImageHeader {
  static final int HEADER = 92;

  /** The most XML area accepted (libvirt reserves its definition plus 64 KiB). */
  static final int MAX_DATA = 16 << 20;

  private static final byte[] MAGIC = "LibvirtQemudSave".getBytes(StandardCharsets.US_ASCII);

  private SaveImageHeader() {}

  /**
   * Replaces the embedded domain XML, keeping the cookie and the migration stream.
   *
   * @throws SnapshotException if the file is not a libvirt save image or the XML does not fit
   */
  static void rewriteXml(Path image, String xml) {
    try (FileChannel ch =
        FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer h = ByteBuffer.allocate(HEADER);
      readFully(ch, h, 0);
      int dataLen = dataLength(h.array(), image.toString());
      ByteBuffer all = ByteBuffer.allocate(HEADER + dataLen);
      readFully(ch, all, 0);
      ByteBuffer out = ByteBuffer.wrap(rewritten(all.array(), xml, image.toString()));
      writeFully(ch, out, 0);
      ch.force(false);
    } catch (IOException e) {
      throw new SnapshotException("rewriting the definition in " + image + ": " + e, e);
    }
  }

  /**
   * The length of the XML area after the {@value #HEADER}-byte header, read from its first bytes.
   *
   * @throws SnapshotException if they are not a libvirt save image's header
   */
  static int dataLength(byte[] header, String image) {
    if (header.length < HEADER) {
      throw new SnapshotException(image + " is not a complete libvirt save image");
    }
    ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.nativeOrder());
    byte[] magic = new byte[16];
    h.get(0, magic);
    if (!Arrays.equals(magic, MAGIC)) {
      throw new SnapshotException(image + " is not a complete libvirt save image");
    }
    int version = h.getInt(16);
    int dataLen = h.getInt(20);
    if (version != 2 || dataLen <= 0 || dataLen > MAX_DATA) {
      throw new SnapshotException(
          image + ": unsupported save image (version " + version + ", data " + dataLen + ")");
    }
    return dataLen;
  }

  /**
   * The header and XML area ({@code HEADER + dataLen} bytes, as read from the image's start) with
   * {@code xml} in place of the embedded definition: same length, the cookie kept.
   *
   * @throws SnapshotException if they are not a save image's or the XML does not fit
   */
  static byte[] rewritten(byte[] headerAndData, String xml, String image) {
    int dataLen = dataLength(headerAndData, image);
    if (headerAndData.length != HEADER + dataLen) {
      throw new SnapshotException(image + " is not a complete libvirt save image");
    }
    ByteBuffer h =
        ByteBuffer.wrap(Arrays.copyOf(headerAndData, HEADER)).order(ByteOrder.nativeOrder());
    int cookieOffset = h.getInt(32);
    byte[] data = Arrays.copyOfRange(headerAndData, HEADER, HEADER + dataLen);
    byte[] cookie = new byte[0];
    if (cookieOffset > 0 && cookieOffset < dataLen) {
      int end = cookieOffset;
      while (end < dataLen && data[end] != 0) {
        end++;
      }
      cookie = Arrays.copyOfRange(data, cookieOffset, end);
    }
    byte[] x = xml.getBytes(StandardCharsets.UTF_8);
    int need = x.length + 1 + (cookie.length > 0 ? cookie.length + 1 : 0);
    if (need > dataLen) {
      throw new SnapshotException(
          "the new definition ("
              + x.length
              + " bytes) does not fit into the "
              + dataLen
              + " bytes libvirt reserved in "
              + image);
    }
    ByteBuffer out = ByteBuffer.allocate(HEADER + dataLen).order(ByteOrder.nativeOrder());
    h.putInt(32, cookie.length > 0 ? x.length + 1 : 0);
    out.put(h.array());
    out.put(x).put((byte) 0);
    if (cookie.length > 0) {
      out.put(cookie).put((byte) 0);
    }
    return out.array();
  }

  private static void readFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
    while (b.hasRemaining()) {
      if (ch.read(b, pos + b.position()) < 0) {
        throw new IOException("truncated save image");
      }
    }
    b.flip();
  }

  private static void writeFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
    while (b.hasRemaining()) {
      ch.write(b, pos + b.position());
    }
  }
}
