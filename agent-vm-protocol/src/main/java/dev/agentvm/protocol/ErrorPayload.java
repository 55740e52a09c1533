package dev.agentvm.protocol;

/**
 * The payload of an {@link MessageType#ERROR} frame.
 *
 * @param code what went wrong
 * @param message human-readable detail
 */
public record ErrorPayload(ErrorCode code, String message) {
  public byte[] encode() {
    return new PayloadWriter().u16(code.wire()).string(message).toByteArray();
  }

  public static ErrorPayload decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    ErrorPayload e = new ErrorPayload(ErrorCode.fromWire(r.u16()), r.string());
    r.end();
    return e;
  }
}
