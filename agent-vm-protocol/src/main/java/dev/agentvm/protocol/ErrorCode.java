package dev.agentvm.protocol;

/** Error codes carried in {@link MessageType#ERROR} frames and in {@link ProtocolException}. */
public enum ErrorCode {
  BAD_MAGIC(1),
  BAD_CHECKSUM(2),
  UNSUPPORTED_VERSION(3),
  FRAME_TOO_LARGE(4),
  UNKNOWN_TYPE(5),
  MALFORMED_PAYLOAD(6),
  TRUNCATED(7),
  UNSUPPORTED_OPERATION(8),
  INTERNAL(9),
  UNKNOWN(0);

  private final int wire;

  ErrorCode(int wire) {
    this.wire = wire;
  }

  public int wire() {
    return wire;
  }

  /** The code for a wire value; {@link #UNKNOWN} for a value this version does not know. */
  public static ErrorCode fromWire(int wire) {
    for (ErrorCode c : values()) {
      if (c.wire == wire) {
        return c;
      }
    }
    return UNKNOWN;
  }
}
