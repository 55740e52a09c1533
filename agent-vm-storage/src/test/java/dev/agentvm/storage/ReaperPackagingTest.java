package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.agentvm.core.FakeHypervisor;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.Reaper;
import dev.agentvm.core.TempStateDirectory;
import java.io.IOException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collections;
import java.util.Enumeration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A user's shaded jar that dropped the library's {@code META-INF/services} entries (or kept only
 * one module's) still reaps what the storage module owns: the library's own reapers are also found
 * by name. Simulated with a class loader that hides every services file of the reaper SPI.
 */
class ReaperPackagingTest {
  @RegisterExtension final TempStateDirectory state = new TempStateDirectory();

  /** Everything as the parent has it, except the reaper SPI's services files. */
  private static final class WithoutServiceFiles extends ClassLoader {
    WithoutServiceFiles(ClassLoader parent) {
      super(parent);
    }

    @Override
    public Enumeration<URL> getResources(String name) throws IOException {
      return name.startsWith("META-INF/services/dev.agentvm.core.spi.OrphanReaper")
          ? Collections.emptyEnumeration()
          : super.getResources(name);
    }
  }

  @Test
  void theStorageReaperRunsWithoutItsServicesFile() throws Exception {
    Path orphan = Files.createDirectories(state.path().resolve("workspaces").resolve("left"));
    Files.writeString(
        orphan.resolve(Owners.FILE), "999999999@1970-01-01T00:00:00Z", StandardCharsets.UTF_8);
    Thread t = Thread.currentThread();
    ClassLoader before = t.getContextClassLoader();
    t.setContextClassLoader(new WithoutServiceFiles(before));
    try (LibvirtConnection conn = LibvirtConnection.using(new FakeHypervisor())) {
      Reaper.Report r = Reaper.reapOrphans(conn, Duration.ofMillis(100));
      assertEquals(1, r.others().get(new StorageReaper().kind()), r.toString());
    } finally {
      t.setContextClassLoader(before);
    }
    assertFalse(Files.exists(orphan), "the orphaned workspace was reaped");
  }
}
