package dev.agentvm.protocol;

/**
 * What an EGRESS request asks of the guest. Payload: i32 port, i32 window, i32 max streams.
 *
 * @param port the TCP port the guest listens on, on its loopback address only (1..65535)
 * @param window the bytes each side may send on a stream before the other grants more ({@link
 *     StreamFrame#MAX_DATA}..{@link #MAX_WINDOW})
 * @param maxStreams how many streams may be open at once (1..{@link #MAX_STREAMS}); the guest
 *     refuses a connection beyond it
 */
public record EgressSpec(int port, int window, int maxStreams) {
  /** The largest window a request may ask for: 16 MiB. */
  public static final int MAX_WINDOW = 16 << 20;

  /** The most streams a request may allow. */
  public static final int MAX_STREAMS = 1024;

  public EgressSpec {
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException("port must be 1..65535, was " + port);
    }
    if (window < StreamFrame.MAX_DATA || window > MAX_WINDOW) {
      throw new IllegalArgumentException(
          "window must be " + StreamFrame.MAX_DATA + ".." + MAX_WINDOW + ", was " + window);
    }
    if (maxStreams < 1 || maxStreams > MAX_STREAMS) {
      throw new IllegalArgumentException(
          "maxStreams must be 1.." + MAX_STREAMS + ", was " + maxStreams);
    }
  }

  public byte[] encode() {
    return new PayloadWriter().i32(port).i32(window).i32(maxStreams).toByteArray();
  }

  public static EgressSpec decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int port = r.i32();
    int window = r.i32();
    int max = r.i32();
    r.end();
    try {
      return new EgressSpec(port, window, max);
    } catch (IllegalArgumentException e) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, String.valueOf(e.getMessage()));
    }
  }
}
