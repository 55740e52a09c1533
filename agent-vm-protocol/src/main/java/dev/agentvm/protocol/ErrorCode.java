package dev.agentvm.protocol;

/**
 * Error codes carried in {@link MessageType#ERROR} frames and in {@link ProtocolException}. Codes 1
 * to 9 are protocol and agent failures; 10 and up are a request's own failures, in the user's terms
 * (a missing working directory, a command not on PATH), with a message that names the path or
 * command. Wire values never change once released.
 */
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
  /**
   * What the request names does not exist: a path (GET_FILE's file, EXEC's working directory) or
   * the running command a KILL names.
   */
  NOT_FOUND(10),
  /** A path that must be a directory is not (EXEC's working directory, a parent directory). */
  NOT_A_DIRECTORY(11),
  /** A path that must be a file is a directory (GET_FILE's file, PUT_FILE's target). */
  IS_A_DIRECTORY(12),
  /** A path that must be a regular file is a device, FIFO or socket. */
  NOT_A_REGULAR_FILE(13),
  /** The agent may not read or write the path (permissions, a read-only file system). */
  PERMISSION_DENIED(14),
  /** A path that must be absolute is not, or holds a NUL byte. */
  BAD_PATH(15),
  /** EXEC's command (argv[0]) is neither on PATH nor an existing file. */
  COMMAND_NOT_FOUND(16),
  /** EXEC's command exists but is not an executable file. */
  NOT_EXECUTABLE(17),
  /** MOUNT failed; the message carries mount's own output. */
  MOUNT_FAILED(18),
  /** The guest file system is full. */
  NO_SPACE(19),
  /** FS_OP: the path to create or rename to exists already. */
  ALREADY_EXISTS(20),
  /** FS_OP: a directory to remove is not empty (and the request was not recursive). */
  NOT_EMPTY(21),
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
