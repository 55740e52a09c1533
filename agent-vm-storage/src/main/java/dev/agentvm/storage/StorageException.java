package dev.agentvm.storage;

import dev.agentvm.core.AgentVmException;

/** A disk image, workspace or file operation failed; the message names the file and the reason. */
public class StorageException extends AgentVmException {
  public StorageException(String message) {
    super(message);
  }

  public StorageException(String message, Throwable cause) {
    super(message, cause);
  }
}
