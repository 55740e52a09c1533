package dev.agentvm.protocol;

import java.util.Objects;

/**
 * An FS_OP request: one file system operation on a guest path.
 *
 * <p>Payload: u8 op, string path, string target (the new name for {@link Op#RENAME}, else empty),
 * u8 flags ({@link #RECURSIVE}: {@code mkdir -p} for MKDIR, whole tree for REMOVE), i32 limit (the
 * most entries a LIST may answer; 0 for the others).
 *
 * @param op the operation
 * @param path absolute guest path
 * @param target absolute new path for RENAME; empty otherwise
 * @param flags a bit set of {@link #RECURSIVE}
 * @param limit the most entries LIST answers with (1..{@link #MAX_LIST}); 0 for other operations
 */
public record FsRequest(Op op, String path, String target, int flags, int limit) {
  /** MKDIR creates missing parents; REMOVE removes a directory with everything below it. */
  public static final int RECURSIVE = 0x01;

  /** The most entries one LIST answer may hold, whatever the request asks. */
  public static final int MAX_LIST = 10_000;

  /** The operations; each constant carries its wire value. */
  public enum Op {
    /** Answers an {@link FsEntry} for the path itself (links are not followed). */
    STAT(1),
    /** Answers an {@link FsListing} of a directory's entries, sorted by name. */
    LIST(2),
    /** Creates a directory (mode 0755); an existing directory is success with RECURSIVE. */
    MKDIR(3),
    /** Removes a file, a link or an empty directory; with RECURSIVE a whole tree. */
    REMOVE(4),
    /** Renames {@code path} to {@code target} (replacing a file there), within one file system. */
    RENAME(5);

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
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "unknown FS_OP operation " + wire);
    }
  }

  public FsRequest {
    Objects.requireNonNull(op, "op");
    Objects.requireNonNull(path, "path");
    Objects.requireNonNull(target, "target");
    if ((flags & ~RECURSIVE) != 0) {
      throw new IllegalArgumentException("unknown flags 0x" + Integer.toHexString(flags));
    }
    if (op == Op.LIST ? limit < 1 || limit > MAX_LIST : limit != 0) {
      throw new IllegalArgumentException("limit " + limit + " is not valid for " + op);
    }
    if ((op == Op.RENAME) == target.isEmpty()) {
      throw new IllegalArgumentException(
          op == Op.RENAME ? "RENAME needs a target" : op + " takes no target");
    }
  }

  /** A request without target, flags or limit. */
  public static FsRequest of(Op op, String path) {
    return new FsRequest(op, path, "", 0, 0);
  }

  public byte[] encode() {
    return new PayloadWriter()
        .u8(op.wire)
        .string(path)
        .string(target)
        .u8(flags)
        .i32(limit)
        .toByteArray();
  }

  public static FsRequest decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    Op op = Op.fromWire(r.u8());
    FsRequest q;
    try {
      q = new FsRequest(op, r.string(), r.string(), r.u8(), r.i32());
    } catch (IllegalArgumentException e) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, String.valueOf(e.getMessage()));
    }
    r.end();
    return q;
  }
}
