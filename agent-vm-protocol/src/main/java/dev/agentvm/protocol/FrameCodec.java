package dev.agentvm.protocol;

import java.util.zip.CRC32;

/**
 * The frame layout and the encode step. All integers are big-endian.
 *
 * <pre>
 *  offset  size  field
 *  ------  ----  -----------------------------------------------------------
 *       0     4  magic            0x41 0x56 0x4D 0x50  ("AVMP")
 *       4     1  version          {@link #VERSION}
 *       5     1  type             {@link MessageType} wire value
 *       6     2  flags            bit 0: response
 *       8     4  request id       unsigned
 *      12     4  payload length   unsigned, at most the receiver's maximum
 *      16     4  header CRC32     CRC32 (IEEE) of bytes 0..15
 *      20     n  payload
 *    20+n     4  frame CRC32      CRC32 (IEEE) of bytes 0..19+n (header and payload)
 * </pre>
 *
 * <p>The header CRC lets a reader reject a damaged length before it waits for, or allocates, a
 * payload that will never come; the frame CRC covers everything.
 */
public final class FrameCodec {
  public static final int MAGIC = 0x41564D50;
  public static final int VERSION = 1;
  public static final int HEADER_SIZE = 20;
  public static final int TRAILER_SIZE = 4;

  /** Default maximum payload size: 1 MiB. Larger data travels in chunks. */
  public static final int DEFAULT_MAX_PAYLOAD = 1 << 20;

  private FrameCodec() {}

  /** Encodes a frame into one array (header, payload, trailer), ready for a single write. */
  public static byte[] encode(Frame frame) {
    byte[] p = frame.payload();
    byte[] out = new byte[HEADER_SIZE + p.length + TRAILER_SIZE];
    putInt(out, 0, MAGIC);
    out[4] = (byte) VERSION;
    out[5] = (byte) frame.type();
    out[6] = (byte) (frame.flags() >>> 8);
    out[7] = (byte) frame.flags();
    putInt(out, 8, frame.requestId());
    putInt(out, 12, p.length);
    CRC32 crc = new CRC32();
    crc.update(out, 0, 16);
    putInt(out, 16, (int) crc.getValue());
    System.arraycopy(p, 0, out, HEADER_SIZE, p.length);
    crc.reset();
    crc.update(out, 0, HEADER_SIZE + p.length);
    putInt(out, HEADER_SIZE + p.length, (int) crc.getValue());
    return out;
  }

  static void putInt(byte[] b, int off, int v) {
    b[off] = (byte) (v >>> 24);
    b[off + 1] = (byte) (v >>> 16);
    b[off + 2] = (byte) (v >>> 8);
    b[off + 3] = (byte) v;
  }

  static int getInt(byte[] b, int off) {
    return (b[off] & 0xFF) << 24
        | (b[off + 1] & 0xFF) << 16
        | (b[off + 2] & 0xFF) << 8
        | (b[off + 3] & 0xFF);
  }
}
