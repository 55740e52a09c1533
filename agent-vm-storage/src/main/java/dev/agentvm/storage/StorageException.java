package dev.agentvm.storage;

import dev.agentvm.core.AgentVmException;
import org.jspecify.annotations.Nullable;

/** A disk image, workspace or file operation failed; the message names the file and the reason. */
public class StorageException extends AgentVmException {
  private static final long serialVersionUID = 1L;

  public StorageException(String message) {
    super(message);
  }

  public StorageException(String message, @Nullable Throwable cause) {
    super(message, cause);
  }
}
