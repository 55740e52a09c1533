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
  SHUTDOWN(0x05),
  /** Runs a command ({@link ExecSpec}); answered by STDOUT/STDERR chunks, then one EXIT. */
  EXEC(0x10),
  /** A chunk of a command's standard output (raw bytes), answering an EXEC. */
  STDOUT(0x11),
  /** A chunk of a command's standard error (raw bytes), answering an EXEC. */
  STDERR(0x12),
  /** The end of an EXEC ({@link ExitStatus}). */
  EXIT(0x13),
  /** Stops the EXEC whose request id is the payload's i32 (TERM, then KILL after its grace). */
  KILL(0x14),
  /** Guest health numbers ({@link StatusReport}). */
  STATUS(0x15),
  /**
   * Starts a background process ({@link ExecSpec}) that outlives the connection: answered at once
   * by SPAWN with its handle (i32), then STDOUT/STDERR chunks and one EXIT with this request id
   * while the connection lasts. Without a connection its output is kept in a bounded buffer.
   */
  SPAWN(0x16),
  /**
   * An operation on a background process by handle ({@link ProcRequest}: attach, stdin, close
   * stdin, kill, list); answered by PROC (ATTACH then streams like SPAWN).
   */
  PROC(0x17),
  /** Writes a file ({@link FileHeader}), followed by FILE_DATA chunks with the same request id. */
  PUT_FILE(0x20),
  /**
   * Reads a file: payload string path, i64 size limit; answered by FILE_DATA chunks, then GET_FILE.
   */
  GET_FILE(0x21),
  /** A chunk of file content; the last chunk of a file carries {@link Frame#FLAG_END}. */
  FILE_DATA(0x22),
  /**
   * A file system operation ({@link FsRequest}: stat, list, mkdir, remove, rename); answered by an
   * FS_OP frame with the operation's result ({@link FsEntry}, {@link FsListing} or empty).
   */
  FS_OP(0x23),
  /**
   * Watches a directory (payload: string path): answered by an empty WATCH, then one WATCH per
   * change ({@link FsEvent}), until KILL names this request id (or the connection ends); the last
   * WATCH carries {@link Frame#FLAG_END} and an empty payload.
   */
  WATCH(0x24),
  /** Mounts a virtio-9p share ({@link MountSpec}) on demand. */
  MOUNT(0x30),
  /**
   * Opens the guest's egress listener ({@link EgressSpec}): a TCP port on the guest's loopback
   * whose connections become streams. Answered by an empty EGRESS once listening, then by the
   * guest's STREAM frames with this request id, until KILL names it or the connection ends (the
   * last EGRESS carries {@link Frame#FLAG_END}). A new EGRESS replaces the one before.
   */
  EGRESS(0x40),
  /**
   * One event of one egress stream ({@link StreamFrame}: open, data, window, close, reset), in
   * either direction, with the EGRESS request id.
   */
  STREAM(0x41);

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
