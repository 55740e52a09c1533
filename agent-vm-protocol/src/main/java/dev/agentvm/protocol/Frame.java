package dev.agentvm.protocol;

import java.util.Arrays;
import java.util.Optional;

/**
 * One protocol frame: a type, flags, a request id and an opaque payload. The type is kept as its
 * raw wire value so that a receiver can answer a frame of a type it does not know (see {@link
 * #messageType()}).
 *
 * @param type the wire value of the message type (0..255)
 * @param flags frame flags (0..65535), see {@link #FLAG_RESPONSE}
 * @param requestId correlates answers with requests; chosen by the side that starts an exchange
 * @param payload the payload bytes; not copied, callers must not modify it afterwards
 */
// ArrayRecordComponent: equals, hashCode and toString below treat the payload by content; it is not
// copied on purpose (every frame passes here, payloads are up to the frame limit), see @param.
@SuppressWarnings("ArrayRecordComponent")
public record Frame(int type, int flags, int requestId, byte[] payload) {
  /** Set on frames that answer a request (the request id is then the request's). */
  public static final int FLAG_RESPONSE = 0x0001;

  /** Set on the last frame of a chunked stream (the last FILE_DATA of a file). */
  public static final int FLAG_END = 0x0002;

  private static final byte[] EMPTY = new byte[0];

  public Frame {
    if (type < 0 || type > 0xFF) {
      throw new IllegalArgumentException("type must be 0..255, was " + type);
    }
    if (flags < 0 || flags > 0xFFFF) {
      throw new IllegalArgumentException("flags must be 0..65535, was " + flags);
    }
    payload = payload == null ? EMPTY : payload;
  }

  public static Frame request(MessageType type, int requestId, byte[] payload) {
    return new Frame(type.wire(), 0, requestId, payload);
  }

  public static Frame response(MessageType type, int requestId, byte[] payload) {
    return new Frame(type.wire(), FLAG_RESPONSE, requestId, payload);
  }

  /** The message type, or empty when this version does not know the wire value. */
  public Optional<MessageType> messageType() {
    return MessageType.fromWire(type);
  }

  public boolean isResponse() {
    return (flags & FLAG_RESPONSE) != 0;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Frame f
        && f.type == type
        && f.flags == flags
        && f.requestId == requestId
        && Arrays.equals(f.payload, payload);
  }

  @Override
  public int hashCode() {
    return ((type * 31 + flags) * 31 + requestId) * 31 + Arrays.hashCode(payload);
  }

  @Override
  public String toString() {
    return "Frame{type="
        + messageType().map(Enum::name).orElse("0x" + Integer.toHexString(type))
        + ", flags=0x"
        + Integer.toHexString(flags)
        + ", requestId="
        + requestId
        + ", payload="
        + payload.length
        + "B}";
  }
}
