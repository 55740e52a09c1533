package dev.agentvm.storage;

/** A guest's output exceeded {@link OutputLimits}; nothing of it was extracted. */
public class OutputLimitException extends StorageException {
  private static final long serialVersionUID = 1L;

  public OutputLimitException(String message) {
    super(message);
  }
}
