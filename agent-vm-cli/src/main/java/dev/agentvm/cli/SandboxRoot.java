package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.nio.file.Path;
import org.jspecify.annotations.Nullable;
import picocli.CommandLine.Option;

/** Where the sandbox records of the commands that work on sandboxes are. */
final class SandboxRoot {
  @Option(
      names = "--sandboxes",
      paramLabel = "DIR",
      description =
          "the directory of the sandbox records, as given to Sandboxes.open(connection, root)"
              + " (default: where Sandboxes.open(connection) keeps them for --uri: the state"
              + " directory's sandboxes, or sandboxes/.hosts/<hash of the URI> for a remote host)")
  @Nullable Path dir;

  Path of(LibvirtConnection conn) {
    return dir != null ? dir : Sandboxes.defaultRoot(conn);
  }
}
