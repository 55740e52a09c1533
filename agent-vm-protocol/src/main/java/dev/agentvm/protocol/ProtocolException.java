package dev.agentvm.protocol;

import java.io.IOException;

/** A frame or payload that breaks the protocol. Carries the wire {@link ErrorCode}. */
public class ProtocolException extends IOException {
  private final ErrorCode code;

  public ProtocolException(ErrorCode code, String message) {
    super(code + ": " + message);
    this.code = code;
  }

  public ErrorCode code() {
    return code;
  }
}
