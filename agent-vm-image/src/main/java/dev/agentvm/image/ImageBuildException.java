package dev.agentvm.image;

import java.io.IOException;

/** The micro image could not be built; the message says which step failed and what to do. */
public class ImageBuildException extends IOException {
  private static final long serialVersionUID = 1L;

  public ImageBuildException(String message) {
    super(message);
  }

  public ImageBuildException(String message, Throwable cause) {
    super(message, cause);
  }
}
