package dev.agentvm.protocol;

/**
 * Describes a file sent with PUT_FILE, or answered by GET_FILE after its data.
 *
 * @param path absolute path in the guest
 * @param mode permission bits (e.g. 0644)
 * @param size length in bytes
 * @param sha256 lowercase hex SHA-256 of the content
 */
public record FileHeader(String path, int mode, long size, String sha256) {
  public FileHeader {
    if (size < 0) {
      throw new IllegalArgumentException("size must be >= 0, was " + size);
    }
    if (mode < 0 || mode > 07777) {
      throw new IllegalArgumentException(
          "mode must be 0..07777, was " + Integer.toOctalString(mode));
    }
  }

  public byte[] encode() {
    return new PayloadWriter().string(path).i32(mode).i64(size).string(sha256).toByteArray();
  }

  public static FileHeader decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    FileHeader h;
    try {
      h = new FileHeader(r.string(), r.i32(), r.i64(), r.string());
    } catch (IllegalArgumentException e) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, String.valueOf(e.getMessage()));
    }
    r.end();
    return h;
  }
}
