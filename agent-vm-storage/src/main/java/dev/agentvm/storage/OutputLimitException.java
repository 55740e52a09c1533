package dev.agentvm.storage;

/** A guest's output exceeded {@link OutputLimits}; nothing of it was extracted. */
public class OutputLimitException extends StorageException {
  public OutputLimitException(String message) {
    super(message);
  }
}
