package dev.agentvm.protocol;

import java.util.Arrays;
import java.util.Objects;

/**
 * One event of an egress stream. Payload: i32 stream id (&gt; 0, chosen by the guest when it
 * accepts a connection), u8 op, then by op: DATA a byte string (1..{@link #MAX_DATA} bytes), WINDOW
 * an i32 credit (&gt; 0), RESET a string reason; OPEN and CLOSE nothing.
 *
 * @param stream the stream id
 * @param op what happened
 * @param data DATA's bytes (empty for the other ops); not copied
 * @param credit WINDOW's credit in bytes (0 for the other ops)
 * @param reason RESET's reason (empty for the other ops)
 */
// ArrayRecordComponent: equals and hashCode below compare data by content; it is not copied, as
// with Frame's payload (every byte of every egress connection passes here).
@SuppressWarnings("ArrayRecordComponent")
public record StreamFrame(int stream, Op op, byte[] data, int credit, String reason) {
  /** The most bytes one DATA frame carries: 32 KiB, so other traffic interleaves often. */
  public static final int MAX_DATA = 32 * 1024;

  /** The longest RESET reason sent; longer ones are cut. */
  public static final int MAX_REASON = 512;

  private static final byte[] NONE = new byte[0];

  /** Stream events; each constant carries its wire value. */
  public enum Op {
    /** Guest to host: a client connected; the stream exists from now on. */
    OPEN(1),
    /** Bytes of the stream, within the sender's credit. */
    DATA(2),
    /** The receiver consumed bytes: the sender may send this many more. */
    WINDOW(3),
    /** The sender sends no more DATA (a half-close); the other direction stays open. */
    CLOSE(4),
    /** The stream is gone in both directions; no more frames of it follow. */
    RESET(5);

    private final int wire;

    Op(int wire) {
      this.wire = wire;
    }

    /** The one-byte value on the wire. */
    public int wire() {
      return wire;
    }

    static Op fromWire(int wire) throws ProtocolException {
      for (Op o : values()) {
        if (o.wire == wire) {
          return o;
        }
      }
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "unknown stream op " + wire);
    }
  }

  public StreamFrame {
    Objects.requireNonNull(op, "op");
    data = data == null ? NONE : data;
    reason = reason == null ? "" : reason;
    if (stream <= 0) {
      throw new IllegalArgumentException("stream id must be > 0, was " + stream);
    }
    if (op == Op.DATA ? data.length < 1 || data.length > MAX_DATA : data.length != 0) {
      throw new IllegalArgumentException(op + " with " + data.length + " data bytes");
    }
    if (op == Op.WINDOW ? credit <= 0 : credit != 0) {
      throw new IllegalArgumentException(op + " with credit " + credit);
    }
    if (op != Op.RESET && !reason.isEmpty()) {
      throw new IllegalArgumentException(op + " with a reason");
    }
    if (reason.length() > MAX_REASON) {
      int cut =
          Character.isHighSurrogate(reason.charAt(MAX_REASON - 1)) ? MAX_REASON - 1 : MAX_REASON;
      reason = reason.substring(0, cut);
    }
  }

  public static StreamFrame open(int stream) {
    return new StreamFrame(stream, Op.OPEN, NONE, 0, "");
  }

  /** A DATA frame of {@code data} (not copied). */
  public static StreamFrame data(int stream, byte[] data) {
    return new StreamFrame(stream, Op.DATA, data, 0, "");
  }

  public static StreamFrame window(int stream, int credit) {
    return new StreamFrame(stream, Op.WINDOW, NONE, credit, "");
  }

  public static StreamFrame close(int stream) {
    return new StreamFrame(stream, Op.CLOSE, NONE, 0, "");
  }

  public static StreamFrame reset(int stream, String reason) {
    return new StreamFrame(stream, Op.RESET, NONE, 0, reason);
  }

  public byte[] encode() {
    PayloadWriter w = new PayloadWriter().i32(stream).u8(op.wire);
    switch (op) {
      case DATA -> w.bytes(data);
      case WINDOW -> w.i32(credit);
      case RESET -> w.string(reason);
      default -> {}
    }
    return w.toByteArray();
  }

  /**
   * Decodes a STREAM payload; every rule of the constructor is a {@link
   * ErrorCode#MALFORMED_PAYLOAD} here.
   */
  public static StreamFrame decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int stream = r.i32();
    Op op = Op.fromWire(r.u8());
    byte[] data = op == Op.DATA ? r.bytes() : NONE;
    int credit = op == Op.WINDOW ? r.i32() : 0;
    String reason = op == Op.RESET ? r.string() : "";
    r.end();
    try {
      return new StreamFrame(stream, op, data, credit, reason);
    } catch (IllegalArgumentException e) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, String.valueOf(e.getMessage()));
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof StreamFrame f
        && f.stream == stream
        && f.op == op
        && f.credit == credit
        && f.reason.equals(reason)
        && Arrays.equals(f.data, data);
  }

  @Override
  public int hashCode() {
    return Objects.hash(stream, op, credit, reason, Arrays.hashCode(data));
  }

  @Override
  public String toString() {
    return "StreamFrame{" + stream + " " + op + " data=" + data.length + "B credit=" + credit + "}";
  }
}
