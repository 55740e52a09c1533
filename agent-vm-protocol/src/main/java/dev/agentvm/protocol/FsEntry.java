package dev.agentvm.protocol;

import java.util.Objects;

/**
 * One file system entry, as STAT and LIST answer it.
 *
 * <p>Payload: string name, u8 kind, i64 size, i32 mode, i64 modified (milliseconds since the
 * epoch). For STAT the name is the whole path; for LIST the entry's name in its directory.
 *
 * @param name the entry's name (LIST) or path (STAT)
 * @param kind what it is (links are reported as links, not followed)
 * @param size length in bytes (for a link: the length of its target's name)
 * @param mode permission bits (0..07777)
 * @param modifiedMillis last modification, milliseconds since the epoch
 */
public record FsEntry(String name, Kind kind, long size, int mode, long modifiedMillis) {
  /** Entry kinds; each constant carries its wire value. */
  public enum Kind {
    FILE(1),
    DIRECTORY(2),
    SYMLINK(3),
    /** A FIFO, socket or device node. */
    OTHER(4);

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
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "unknown entry kind " + wire);
    }
  }

  public FsEntry {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(kind, "kind");
    if (size < 0) {
      throw new IllegalArgumentException("size must be >= 0, was " + size);
    }
    if (mode < 0 || mode > 07777) {
      throw new IllegalArgumentException("mode must be 0..07777, was " + mode);
    }
  }

  void writeTo(PayloadWriter w) {
    w.string(name).u8(kind.wire).i64(size).i32(mode).i64(modifiedMillis);
  }

  static FsEntry readFrom(PayloadReader r) throws ProtocolException {
    String name = r.string();
    Kind kind = Kind.fromWire(r.u8());
    try {
      return new FsEntry(name, kind, r.i64(), r.i32(), r.i64());
    } catch (IllegalArgumentException e) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, String.valueOf(e.getMessage()));
    }
  }

  public byte[] encode() {
    PayloadWriter w = new PayloadWriter();
    writeTo(w);
    return w.toByteArray();
  }

  public static FsEntry decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    FsEntry e = readFrom(r);
    r.end();
    return e;
  }
}
