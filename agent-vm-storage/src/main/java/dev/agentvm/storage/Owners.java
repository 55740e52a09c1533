package dev.agentvm.storage;

import dev.agentvm.core.LibvirtConnection;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/** The {@code .owner} file that says which process made a directory of agent-vm's. */
final class Owners {
  static final String FILE = ".owner";

  private Owners() {}

  static void mark(Path dir) throws IOException {
    Files.writeString(dir.resolve(FILE), LibvirtConnection.processOwner(), StandardCharsets.UTF_8);
  }

  static Optional<String> of(Path dir) {
    try {
      Path f = dir.resolve(FILE);
      return Files.isRegularFile(f)
          ? Optional.of(Files.readString(f, StandardCharsets.UTF_8).trim())
          : Optional.empty();
    } catch (IOException e) {
      return Optional.empty();
    }
  }
}
