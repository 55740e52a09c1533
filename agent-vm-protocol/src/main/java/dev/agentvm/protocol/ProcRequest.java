package dev.agentvm.protocol;

import java.util.Objects;

/**
 * A PROC request: one operation on a background process started by SPAWN.
 *
 * <p>Payload: u8 op, i32 handle (0 for LIST), bytes data (stdin bytes for STDIN, else empty).
 *
 * @param op the operation
 * @param handle the process's handle from the SPAWN answer
 * @param data bytes for {@link Op#STDIN}; empty otherwise
 */
@SuppressWarnings("ArrayRecordComponent") // data is copied in and out; equality is by content
public record ProcRequest(Op op, int handle, byte[] data) {
  /** The most stdin bytes one PROC STDIN carries. */
  public static final int MAX_STDIN_CHUNK = 256 * 1024;

  /** The operations; each constant carries its wire value. */
  public enum Op {
    /**
     * Streams the process's output to this connection: what was kept while no host listened, then
     * live chunks, then EXIT, all with this request's id (after an empty PROC answer).
     */
    ATTACH(1),
    /** Writes {@code data} to the process's standard input; answered once written. */
    STDIN(2),
    /** Closes the process's standard input. */
    CLOSE_STDIN(3),
    /** Stops the process's group: TERM, then KILL after its kill grace; answered at once. */
    KILL(4),
    /** Lists the background processes the agent knows ({@link ProcList}). */
    LIST(5);

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
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "unknown PROC operation " + wire);
    }
  }

  public ProcRequest {
    Objects.requireNonNull(op, "op");
    data = data.clone();
    if (op != Op.STDIN && data.length > 0) {
      throw new IllegalArgumentException(op + " carries no data");
    }
    if (data.length > MAX_STDIN_CHUNK) {
      throw new IllegalArgumentException("at most " + MAX_STDIN_CHUNK + " stdin bytes per PROC");
    }
  }

  /** The stdin bytes (a copy). */
  @Override
  public byte[] data() {
    return data.clone();
  }

  /** A request without data. */
  public static ProcRequest of(Op op, int handle) {
    return new ProcRequest(op, handle, new byte[0]);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ProcRequest r
        && r.op == op
        && r.handle == handle
        && java.util.Arrays.equals(r.data, data);
  }

  @Override
  public int hashCode() {
    return Objects.hash(op, handle, java.util.Arrays.hashCode(data));
  }

  @Override
  public String toString() {
    return "ProcRequest[" + op + ", " + handle + ", " + data.length + " bytes]";
  }

  public byte[] encode() {
    return new PayloadWriter().u8(op.wire()).i32(handle).bytes(data).toByteArray();
  }

  public static ProcRequest decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    Op op = Op.fromWire(r.u8());
    ProcRequest q;
    try {
      q = new ProcRequest(op, r.i32(), r.bytes());
    } catch (IllegalArgumentException e) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, String.valueOf(e.getMessage()));
    }
    r.end();
    return q;
  }
}
