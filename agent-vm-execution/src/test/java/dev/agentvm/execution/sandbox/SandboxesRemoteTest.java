package dev.agentvm.execution.sandbox;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.FakeHypervisor;
import dev.agentvm.core.LibvirtConnection;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Sandboxes on a remote host are refused up front, naming the host, until they are built there. */
class SandboxesRemoteTest {
  @Test
  void aRemoteHostIsRefusedBeforeAnythingIsMade(@TempDir Path tmp) {
    FakeHypervisor remote =
        new FakeHypervisor() {
          @Override
          public boolean isLocal() {
            return false;
          }
        };
    try (LibvirtConnection conn = LibvirtConnection.using(remote)) {
      Path root = tmp.resolve("sandboxes");
      SandboxException e = assertThrows(SandboxException.class, () -> Sandboxes.open(conn, root));
      assertTrue(e.getMessage().contains(conn.uri()), e.getMessage());
      assertFalse(Files.exists(root));
    }
  }
}
