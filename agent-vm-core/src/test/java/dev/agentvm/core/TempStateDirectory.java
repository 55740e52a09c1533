package dev.agentvm.core;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Points agent-vm's state directory ({@code agentvm.state.dir}) at a fresh temporary directory for
 * each test and puts the previous value back after it: for tests of reapers that scan it. Use with
 * {@code @RegisterExtension}; {@link #path()} is the directory of the running test.
 */
public final class TempStateDirectory implements BeforeEachCallback, AfterEachCallback {
  private static final String STATE = "agentvm.state.dir";
  private String before;
  private Path dir;

  @Override
  public void beforeEach(ExtensionContext context) throws Exception {
    before = System.getProperty(STATE);
    dir = Files.createTempDirectory("agentvm-state-");
    System.setProperty(STATE, dir.toString());
  }

  @Override
  public void afterEach(ExtensionContext context) throws Exception {
    if (before == null) {
      System.clearProperty(STATE);
    } else {
      System.setProperty(STATE, before);
    }
    dev.agentvm.internal.Trees.delete(dir);
  }

  /** The state directory of the running test. */
  public Path path() {
    return dir;
  }
}
