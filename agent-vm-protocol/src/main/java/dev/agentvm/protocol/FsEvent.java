package dev.agentvm.protocol;

import java.util.Objects;

/**
 * A change in a watched directory. Payload: u8 kind, string name (the entry's name in the
 * directory; empty for {@link Kind#OVERFLOW}).
 *
 * @param kind what happened
 * @param name which entry
 */
public record FsEvent(Kind kind, String name) {
  /** Event kinds; each constant carries its wire value. */
  public enum Kind {
    CREATED(1),
    MODIFIED(2),
    DELETED(3),
    /** Events were lost (the guest's queue overflowed): list the directory again. */
    OVERFLOW(4);

    private final int wire;

    Kind(int wire) {
      this.wire = wire;
    }

    /** The one-byte value on the wire. */
    public int wire() {
      return wire;
    }

    static Kind fromWire(int wire) throws ProtocolException {
      for (Kind k : values()) {
        if (k.wire == wire) {
          return k;
        }
      }
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "unknown event kind " + wire);
    }
  }

  public FsEvent {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(name, "name");
  }

  public byte[] encode() {
    return new PayloadWriter().u8(kind.wire).string(name).toByteArray();
  }

  public static FsEvent decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    FsEvent e = new FsEvent(Kind.fromWire(r.u8()), r.string());
    r.end();
    return e;
  }
}
