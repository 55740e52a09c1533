package dev.agentvm.protocol;

/**
 * The host's opening message: the range of protocol versions it speaks.
 *
 * @param minVersion lowest protocol version the host accepts
 * @param maxVersion highest protocol version the host accepts
 * @param hostSoftware free text naming the host library and version, for the guest's log
 */
public record HelloRequest(int minVersion, int maxVersion, String hostSoftware) {
  public HelloRequest {
    if (minVersion < 0 || maxVersion < minVersion || maxVersion > 0xFFFF) {
      throw new IllegalArgumentException(
          "need 0 <= minVersion <= maxVersion <= 65535, was " + minVersion + ".." + maxVersion);
    }
    if (hostSoftware == null) {
      throw new IllegalArgumentException("hostSoftware must not be null");
    }
  }

  public byte[] encode() {
    return new PayloadWriter().u16(minVersion).u16(maxVersion).string(hostSoftware).toByteArray();
  }

  public static HelloRequest decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int min = r.u16();
    int max = r.u16();
    String sw = r.string();
    r.end();
    if (max < min) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "version range " + min + ".." + max);
    }
    return new HelloRequest(min, max, sw);
  }
}
