package dev.agentvm.protocol;

import java.io.IOException;

/** A frame or payload that breaks the protocol. Carries the wire {@link ErrorCode}. */
public class ProtocolException extends IOException {
  private static final long serialVersionUID = 1L;

  private final ErrorCode code;
  private final String detail;

  public ProtocolException(ErrorCode code, String message) {
    super(code + ": " + message);
    this.code = code;
    this.detail = message;
  }

  /** The message without the code in front: what an ERROR frame's message carries. */
  public String detail() {
    return detail;
  }

  public ErrorCode code() {
    return code;
  }
}
