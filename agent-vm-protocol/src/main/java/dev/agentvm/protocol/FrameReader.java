package dev.agentvm.protocol;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.CRC32;

/**
 * Reads frames from a byte stream. Not thread-safe: one reader thread per stream.
 *
 * <p>Every check that can fail before the payload is read (magic, header CRC, version, length
 * against the maximum) is done first, so no input makes it allocate more than the maximum payload
 * size (plus a fixed read buffer). After a {@link ProtocolException} the caller may call {@link
 * #resync()} to skip to the next frame boundary, or drop the stream.
 *
 * <p>Resynchronisation never loses a frame whose bytes are intact, whatever garbage precedes it: a
 * header is parsed in place in a small look-ahead buffer and consumed only once it is accepted, so
 * a rejected header is rescanned from its second byte (the next frame's magic may start inside it),
 * and bytes that look like the start of a magic are kept until enough follow to tell. The one
 * exception is a frame whose header was accepted but whose frame CRC failed: its whole extent
 * (header, the announced payload length, trailer) is skipped, so a frame starting inside that
 * extent is lost. That is deliberate: the bytes inside an accepted frame are a peer's data (a file
 * chunk may well contain frame bytes), and they must never be taken as frames of their own; and
 * garbage passes magic, version and a 32-bit header CRC only by a 2^-32 chance.
 */
public final class FrameReader {
  /** Look-ahead buffer size; bytes past a header are read ahead only up to this. */
  private static final int BUFFER = 8192;

  private final InputStream in;
  private final int maxPayload;
  private final CRC32 crc = new CRC32();

  /** Bytes read from the stream but not yet consumed: {@code buf[pos..lim)}. */
  private final byte[] buf = new byte[BUFFER];

  private int pos;
  private int lim;

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
   * @throws ProtocolException if the frame is malformed (code says how); call {@link #resync()}
   * @throws EOFException if the stream ends inside a frame (the partial frame is dropped)
   */
  // NullAway: null at a clean end of stream is this method's documented contract; the module is
  // java.base only (ArchitectureTest), so it cannot carry JSpecify's @Nullable.
  @SuppressWarnings("NullAway")
  public Frame read() throws IOException {
    if (!fill(FrameCodec.HEADER_SIZE)) {
      int partial = lim - pos;
      pos = lim = 0;
      if (partial == 0) {
        return null;
      }
      throw new EOFException(
          "stream ended inside a frame header ("
              + partial
              + " of "
              + FrameCodec.HEADER_SIZE
              + " bytes)");
    }
    checkHeader(); // on failure the header stays in the buffer, to be rescanned from byte 1
    byte[] header = new byte[FrameCodec.HEADER_SIZE];
    take(header, 0, header.length);
    long length = FrameCodec.getInt(header, 12) & 0xFFFFFFFFL;
    byte[] payload = new byte[(int) length];
    take(payload, 0, payload.length);
    byte[] trailer = new byte[FrameCodec.TRAILER_SIZE];
    take(trailer, 0, trailer.length);
    crc.reset();
    crc.update(header);
    crc.update(payload);
    if ((int) crc.getValue() != FrameCodec.getInt(trailer, 0)) {
      // skipped whole: see the class comment
      throw new ProtocolException(ErrorCode.BAD_CHECKSUM, "frame CRC32 mismatch");
    }
    int type = header[5] & 0xFF;
    int flags = (header[6] & 0xFF) << 8 | (header[7] & 0xFF);
    return new Frame(type, flags, FrameCodec.getInt(header, 8), payload);
  }

  /**
   * Checks the header at {@code buf[pos..pos+20)} without consuming it. A rejected header gives up
   * only its first byte, so that a rescan starts inside it.
   */
  private void checkHeader() throws ProtocolException {
    int magic = FrameCodec.getInt(buf, pos);
    if (magic != FrameCodec.MAGIC) {
      pos++;
      throw new ProtocolException(ErrorCode.BAD_MAGIC, "bad magic 0x" + Integer.toHexString(magic));
    }
    crc.reset();
    crc.update(buf, pos, 16);
    if ((int) crc.getValue() != FrameCodec.getInt(buf, pos + 16)) {
      pos++;
      throw new ProtocolException(ErrorCode.BAD_CHECKSUM, "header CRC32 mismatch");
    }
    int version = buf[pos + 4] & 0xFF;
    if (version != FrameCodec.VERSION) {
      pos++;
      throw new ProtocolException(
          ErrorCode.UNSUPPORTED_VERSION,
          "frame version " + version + ", this reader speaks " + FrameCodec.VERSION);
    }
    long length = FrameCodec.getInt(buf, pos + 12) & 0xFFFFFFFFL;
    if (length > maxPayload) {
      pos++;
      throw new ProtocolException(
          ErrorCode.FRAME_TOO_LARGE,
          "payload length " + length + " exceeds the maximum of " + maxPayload);
    }
  }

  /** True when bytes of the next frame were read ahead already (a frame has begun). */
  public boolean hasBufferedBytes() {
    return lim > pos;
  }

  /**
   * Skips input up to the next frame magic, so that the next {@link #read()} parses the frame that
   * starts there. Bytes already read (a rejected header's) are scanned before the stream's.
   *
   * @return {@code false} if the stream ended before a magic was found (what was read is dropped)
   */
  public boolean resync() throws IOException {
    while (true) {
      if (!fill(4)) {
        pos = lim = 0;
        return false;
      }
      if (FrameCodec.getInt(buf, pos) == FrameCodec.MAGIC) {
        return true;
      }
      pos++;
    }
  }

  /**
   * Makes at least {@code n} (at most {@link #BUFFER}) unconsumed bytes available in the buffer.
   *
   * @return false if the stream ended first (what was read stays in the buffer)
   */
  private boolean fill(int n) throws IOException {
    if (lim - pos >= n) {
      return true;
    }
    if (pos > 0) {
      System.arraycopy(buf, pos, buf, 0, lim - pos);
      lim -= pos;
      pos = 0;
    }
    while (lim < n) {
      int r = in.read(buf, lim, buf.length - lim);
      if (r < 0) {
        return false;
      }
      lim += r;
    }
    return true;
  }

  /** Consumes {@code len} bytes: the buffered ones first, then straight from the stream. */
  private void take(byte[] b, int off, int len) throws IOException {
    int n = Math.min(len, lim - pos);
    System.arraycopy(buf, pos, b, off, n);
    pos += n;
    int done = n;
    while (done < len) {
      int r = in.read(b, off + done, len - done);
      if (r < 0) {
        throw new EOFException(
            "stream ended inside a frame (" + done + " of " + len + " bytes of a field)");
      }
      done += r;
    }
  }
}
