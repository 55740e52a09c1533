package dev.agentvm.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.agentvm.core.LibvirtConnection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Owner files (which process made a directory) and the extraction limits' checks. */
class OwnersTest {
  @TempDir Path tmp;

  @Test
  void aDirectoryNamesTheProcessThatMadeIt() throws Exception {
    Path made = Files.createDirectories(tmp.resolve("made"));
    Owners.mark(made);
    assertEquals(Optional.of(LibvirtConnection.processOwner()), Owners.of(made));
    assertEquals(Optional.empty(), Owners.of(Files.createDirectories(tmp.resolve("unmarked"))));
    // an owner "file" that is a directory names nobody
    Path odd = Files.createDirectories(tmp.resolve("odd").resolve(Owners.FILE));
    assertEquals(Optional.empty(), Owners.of(odd.getParent()));
  }

  @Test
  void limitsRefuseNonsense() {
    assertThrows(
        IllegalArgumentException.class,
        () -> new OutputLimits(1, 1, 1, 0, OutputLimits.DEFAULT_MAX_DEPTH));
    assertThrows(
        IllegalArgumentException.class,
        () -> new OutputLimits(1, 1, 1, OutputLimits.DEFAULT_MAX_ENTRIES, 0));
  }
}
