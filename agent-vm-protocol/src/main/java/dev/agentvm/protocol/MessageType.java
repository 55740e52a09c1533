package dev.agentvm.protocol;

import java.util.Optional;

/**
 * The kinds of frames on the wire. Each constant carries its one-byte wire value; values never
 * change once released, new types take new values.
 */
public enum MessageType {
  /** Version negotiation. Host sends its range first, the guest answers with the chosen one. */
  HELLO(0x01),
  /** Liveness probe; answered by {@link #PONG} with the same request id. */
  PING(0x02),
  PONG(0x03),
  /** An error answer to a request (code and message), see {@link ErrorPayload}. */
  ERROR(0x04),
  /** Asks the guest to flush and power off; acknowledged before the guest powers off. */
  SHUTDOWN(0x05);

  private static final MessageType[] BY_WIRE = new MessageType[256];

  static {
    for (MessageType t : values()) {
      BY_WIRE[t.wire] = t;
    }
  }

  private final int wire;

  MessageType(int wire) {
    this.wire = wire;
  }

  /** The one-byte value used on the wire. */
  public int wire() {
    return wire;
  }

  /** The type with this wire value, or empty for a value this version does not know. */
  public static Optional<MessageType> fromWire(int wire) {
    return wire >= 0 && wire < 256 ? Optional.ofNullable(BY_WIRE[wire]) : Optional.empty();
  }
}
