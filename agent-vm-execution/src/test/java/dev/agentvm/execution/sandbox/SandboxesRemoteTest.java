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

/**
 * A remote backend that keeps no files on its host cannot hold sandboxes: refused up front, naming
 * the host (libvirt's remote hosts keep them in their pool: RemoteSandboxIT).
 */
class SandboxesRemoteTest {
  @Test
  void aRemoteHostWithoutStorageIsRefusedBeforeAnythingIsMade(@TempDir Path tmp) {
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
