package dev.agentvm.protocol;

import java.nio.charset.StandardCharsets;

/**
 * Reads what {@link PayloadWriter} wrote. Every read is bounds-checked: a short or lying payload
 * raises {@link ProtocolException} with {@link ErrorCode#MALFORMED_PAYLOAD}, never an unchecked
 * exception or an allocation larger than the payload itself.
 */
public final class PayloadReader {
  private final byte[] b;
  private int pos;

  public PayloadReader(byte[] payload) {
    this.b = payload;
  }

  private void need(int n, String what) throws ProtocolException {
    if (n < 0 || b.length - pos < n) {
      throw new ProtocolException(
          ErrorCode.MALFORMED_PAYLOAD,
          "payload too short for "
              + what
              + " ("
              + (b.length - pos)
              + " bytes left, need "
              + n
              + ")");
    }
  }

  public int u8() throws ProtocolException {
    need(1, "u8");
    return b[pos++] & 0xFF;
  }

  public int u16() throws ProtocolException {
    need(2, "u16");
    int v = (b[pos] & 0xFF) << 8 | (b[pos + 1] & 0xFF);
    pos += 2;
    return v;
  }

  public int i32() throws ProtocolException {
    need(4, "i32");
    int v = FrameCodec.getInt(b, pos);
    pos += 4;
    return v;
  }

  public long i64() throws ProtocolException {
    long hi = i32() & 0xFFFFFFFFL;
    return hi << 32 | (i32() & 0xFFFFFFFFL);
  }

  public String string() throws ProtocolException {
    int len = i32();
    need(len, "string of " + len + " bytes");
    String s;
    try {
      s =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
              .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
              .decode(java.nio.ByteBuffer.wrap(b, pos, len))
              .toString();
    } catch (java.nio.charset.CharacterCodingException e) {
      throw new ProtocolException(
          ErrorCode.MALFORMED_PAYLOAD, "string of " + len + " bytes is not valid UTF-8");
    }
    pos += len;
    return s;
  }

  public byte[] bytes() throws ProtocolException {
    int len = i32();
    need(len, "byte string of " + len + " bytes");
    byte[] out = java.util.Arrays.copyOfRange(b, pos, pos + len);
    pos += len;
    return out;
  }

  /**
   * Fails unless the payload is empty: for messages that carry none (STATUS and SHUTDOWN requests,
   * KILL, MOUNT and SHUTDOWN answers, PUT_FILE's "ready" and end answers).
   */
  public static void requireEmpty(byte[] payload) throws ProtocolException {
    new PayloadReader(payload).end();
  }

  /** Fails unless the whole payload was consumed: trailing bytes mean a peer we misunderstand. */
  public void end() throws ProtocolException {
    if (pos != b.length) {
      throw new ProtocolException(
          ErrorCode.MALFORMED_PAYLOAD, (b.length - pos) + " unexpected trailing payload bytes");
    }
  }
}
