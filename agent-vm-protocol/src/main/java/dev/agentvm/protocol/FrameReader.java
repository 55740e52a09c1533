package dev.agentvm.protocol;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.CRC32;

/**
 * Reads frames from a byte stream. Not thread-safe: one reader thread per stream.
 *
 * <p>Every check that can fail before the payload is read (magic, version, header CRC, length
 * against the maximum) is done first, so no input makes it allocate more than the maximum payload
 * size. After a {@link ProtocolException} the caller may call {@link #resync()} to skip to the next
 * frame boundary, or drop the stream.
 */
public final class FrameReader {
  private final InputStream in;
  private final int maxPayload;
  private final byte[] header = new byte[FrameCodec.HEADER_SIZE];
  private final CRC32 crc = new CRC32();

  /** Bytes of a magic already consumed by {@link #resync()}; the next read starts after them. */
  private int magicBytesPending;

  /**
   * Header bytes of a frame rejected before its payload: {@link #resync()} rescans them (from the
   * second byte on), since the next frame's magic may start inside them.
   */
  private final byte[] rejected = new byte[FrameCodec.HEADER_SIZE];

  private int rejectedOff;
  private int rejectedLen;

  public FrameReader(InputStream in) {
    this(in, FrameCodec.DEFAULT_MAX_PAYLOAD);
  }

  public FrameReader(InputStream in, int maxPayload) {
    if (maxPayload < 0) {
      throw new IllegalArgumentException("maxPayload must be >= 0, was " + maxPayload);
    }
    this.in = in;
    this.maxPayload = maxPayload;
  }

  /**
   * Reads the next frame, blocking until it is complete.
   *
   * @return the frame, or {@code null} at a clean end of stream (between frames)
   * @throws ProtocolException if the frame is malformed (code says how)
   * @throws EOFException if the stream ends inside a frame
   */
  public Frame read() throws IOException {
    int start = magicBytesPending;
    magicBytesPending = 0;
    if (start > 0) {
      FrameCodec.putInt(header, 0, FrameCodec.MAGIC);
    }
    if (!readFully(header, start, FrameCodec.HEADER_SIZE - start, start == 0)) {
      return null;
    }
    try {
      return readAfterHeader();
    } catch (ProtocolException e) {
      // A frame whose header checked out but whose payload CRC failed is skipped whole.
      if (!headerAccepted) {
        System.arraycopy(header, 1, rejected, 0, FrameCodec.HEADER_SIZE - 1);
        rejectedLen = FrameCodec.HEADER_SIZE - 1;
      }
      throw e;
    }
  }

  private boolean headerAccepted;

  private Frame readAfterHeader() throws IOException {
    headerAccepted = false;
    int magic = FrameCodec.getInt(header, 0);
    if (magic != FrameCodec.MAGIC) {
      throw new ProtocolException(ErrorCode.BAD_MAGIC, "bad magic 0x" + Integer.toHexString(magic));
    }
    crc.reset();
    crc.update(header, 0, 16);
    if ((int) crc.getValue() != FrameCodec.getInt(header, 16)) {
      throw new ProtocolException(ErrorCode.BAD_CHECKSUM, "header CRC32 mismatch");
    }
    int version = header[4] & 0xFF;
    if (version != FrameCodec.VERSION) {
      throw new ProtocolException(
          ErrorCode.UNSUPPORTED_VERSION,
          "frame version " + version + ", this reader speaks " + FrameCodec.VERSION);
    }
    long length = FrameCodec.getInt(header, 12) & 0xFFFFFFFFL;
    if (length > maxPayload) {
      throw new ProtocolException(
          ErrorCode.FRAME_TOO_LARGE,
          "payload length " + length + " exceeds the maximum of " + maxPayload);
    }
    headerAccepted = true;
    byte[] payload = new byte[(int) length];
    readFully(payload, 0, payload.length, false);
    byte[] trailer = new byte[FrameCodec.TRAILER_SIZE];
    readFully(trailer, 0, trailer.length, false);
    crc.reset();
    crc.update(header);
    crc.update(payload);
    if ((int) crc.getValue() != FrameCodec.getInt(trailer, 0)) {
      throw new ProtocolException(ErrorCode.BAD_CHECKSUM, "frame CRC32 mismatch");
    }
    int type = header[5] & 0xFF;
    int flags = (header[6] & 0xFF) << 8 | (header[7] & 0xFF);
    return new Frame(type, flags, FrameCodec.getInt(header, 8), payload);
  }

  /**
   * Skips input until the next frame magic and positions the reader just after it, so that the next
   * {@link #read()} parses the rest of that frame.
   *
   * @return {@code false} if the stream ended before a magic was found
   */
  public boolean resync() throws IOException {
    int window = 0;
    int seen = 0;
    while (true) {
      int b = rejectedOff < rejectedLen ? rejected[rejectedOff++] & 0xFF : in.read();
      if (b < 0) {
        return false;
      }
      window = window << 8 | b;
      seen++;
      if (seen >= 4 && window == FrameCodec.MAGIC) {
        magicBytesPending = 4;
        // unscanned rejected bytes follow the magic: move them in front of the stream
        System.arraycopy(rejected, rejectedOff, rejected, 0, rejectedLen - rejectedOff);
        rejectedLen -= rejectedOff;
        rejectedOff = 0;
        return true;
      }
    }
  }

  /** Returns false only if {@code allowCleanEof} and the stream ended before the first byte. */
  private boolean readFully(byte[] b, int off, int len, boolean allowCleanEof) throws IOException {
    int done = 0;
    while (done < len && rejectedOff < rejectedLen) {
      b[off + done++] = rejected[rejectedOff++];
    }
    while (done < len) {
      int n = in.read(b, off + done, len - done);
      if (n < 0) {
        if (done == 0 && allowCleanEof) {
          return false;
        }
        throw new EOFException("stream ended inside a frame (" + done + " of " + len + " bytes)");
      }
      done += n;
    }
    return true;
  }
}
