package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent's native library compiles without a warning on the build machine's compiler (the image
 * build itself does not insist, a user's newer compiler may warn more) and exports only {@code
 * JNI_OnLoad}: its methods are bound at load, so a mismatch with the agent's class fails {@code
 * System.load}, which the agent survives. Calling it would set this machine's clock: the VM tests
 * do that inside a guest.
 */
class NativeLibraryTest {
  @Test
  void compilesCleanlyAndExportsOnlyItsLoadHook(@TempDir Path dir) throws Exception {
    assertFalse(
        MicroImageBuilder.compilerIdentity().isEmpty(), "no cc: setup-host.sh installs gcc");
    Path src = dir.resolve("agentvm-guest.c");
    try (var in = MicroImageBuilder.class.getResourceAsStream(MicroImageBuilder.NATIVE_SOURCE)) {
      Files.write(src, in.readAllBytes());
    }
    Path lib = dir.resolve("lib.so");
    List<String> cmd = new ArrayList<>(MicroImageBuilder.nativeCompileCommand(src, lib));
    cmd.add(1, "-Werror");
    HostCommands.run(dir, cmd.toArray(String[]::new));
    String symbols =
        new String(
            HostCommands.runForBytes(dir, "nm", "-D", "--defined-only", lib.toString()),
            StandardCharsets.UTF_8);
    List<String> exported =
        symbols
            .lines()
            .filter(l -> l.contains(" T "))
            .map(l -> l.substring(l.lastIndexOf(' ') + 1))
            .toList();
    assertEquals(List.of("JNI_OnLoad"), exported, symbols);
  }
}
