package dev.agentvm.protocol;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Builds a payload from big-endian integers and length-prefixed UTF-8 strings. */
public final class PayloadWriter {
  private final ByteArrayOutputStream out = new ByteArrayOutputStream(64);

  public PayloadWriter u8(int v) {
    out.write(v);
    return this;
  }

  public PayloadWriter u16(int v) {
    out.write(v >>> 8);
    out.write(v);
    return this;
  }

  public PayloadWriter i32(int v) {
    out.write(v >>> 24);
    out.write(v >>> 16);
    out.write(v >>> 8);
    out.write(v);
    return this;
  }

  public PayloadWriter i64(long v) {
    i32((int) (v >>> 32));
    return i32((int) v);
  }

  /**
   * A string as a u32 byte length followed by its UTF-8 bytes.
   *
   * @throws IllegalArgumentException if the string is not valid Unicode (an unpaired surrogate),
   *     which UTF-8 cannot carry: sent anyway, it would arrive silently changed
   */
  public PayloadWriter string(String s) {
    byte[] b;
    try {
      java.nio.ByteBuffer buf =
          StandardCharsets.UTF_8
              .newEncoder()
              .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
              .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
              .encode(java.nio.CharBuffer.wrap(s));
      b = new byte[buf.remaining()];
      buf.get(b);
    } catch (java.nio.charset.CharacterCodingException e) {
      throw new IllegalArgumentException(
          "string is not valid Unicode (unpaired surrogate): cannot be sent as UTF-8", e);
    }
    i32(b.length);
    out.write(b, 0, b.length);
    return this;
  }

  /** Bytes as a u32 length followed by the bytes. */
  public PayloadWriter bytes(byte[] b) {
    i32(b.length);
    out.write(b, 0, b.length);
    return this;
  }

  public byte[] toByteArray() {
    return out.toByteArray();
  }
}
