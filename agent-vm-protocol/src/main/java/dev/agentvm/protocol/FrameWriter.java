package dev.agentvm.protocol;

import java.io.IOException;
import java.io.OutputStream;

/**
 * Writes frames to a byte stream. Thread-safe: each frame goes out in one write under a lock, so
 * frames from concurrent callers never interleave.
 */
public final class FrameWriter {
  private final OutputStream out;
  private final int maxPayload;

  public FrameWriter(OutputStream out) {
    this(out, FrameCodec.DEFAULT_MAX_PAYLOAD);
  }

  public FrameWriter(OutputStream out, int maxPayload) {
    if (maxPayload < 0) {
      throw new IllegalArgumentException("maxPayload must be >= 0, was " + maxPayload);
    }
    this.out = out;
    this.maxPayload = maxPayload;
  }

  /**
   * Writes and flushes one frame.
   *
   * @throws ProtocolException with {@link ErrorCode#FRAME_TOO_LARGE} if the payload exceeds the
   *     limit
   */
  public void write(Frame frame) throws IOException {
    if (frame.payload().length > maxPayload) {
      throw new ProtocolException(
          ErrorCode.FRAME_TOO_LARGE,
          "payload of " + frame.payload().length + " bytes exceeds the maximum of " + maxPayload);
    }
    byte[] bytes = FrameCodec.encode(frame);
    synchronized (this) {
      out.write(bytes);
      out.flush();
    }
  }
}
