package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Checks our cpio writer against the real cpio tool (installed by scripts/setup-host.sh). */
class CpioWriterTest {
  @Test
  void cpioToolReadsWhatWeWrite(@TempDir Path dir) throws Exception {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (CpioWriter w = new CpioWriter(bytes)) {
      w.directory("bin", 0755);
      w.file("bin/hello", 0755, "#!/bin/sh\necho hi\n".getBytes(StandardCharsets.UTF_8));
      w.file("odd", 0644, new byte[] {1, 2, 3}); // length not a multiple of 4: padding matters
      w.symlink("bin/link", "hello");
      w.charDevice("console", 0600, 5, 1);
    }
    Path archive = dir.resolve("a.cpio");
    Files.write(archive, bytes.toByteArray());
    Process p =
        new ProcessBuilder("cpio", "-itv", "--quiet", "-F", archive.toString())
            .redirectErrorStream(true)
            .start();
    String listing = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), listing);
    assertTrue(listing.contains("drwxr-xr-x") && listing.contains("bin"), listing);
    assertTrue(listing.matches("(?s).*-rwxr-xr-x.*bin/hello.*"), listing);
    assertTrue(listing.matches("(?s).*-rw-r--r--.*\\b3\\b.*odd.*"), listing);
    assertTrue(listing.contains("bin/link -> hello"), listing);
    assertTrue(listing.matches("(?s).*crw-------.*5,\\s*1.*console.*"), listing);

    Path out = Files.createDirectory(dir.resolve("x"));
    Process x =
        new ProcessBuilder("cpio", "-idm", "--quiet", "-F", archive.toString())
            .directory(out.toFile())
            .redirectErrorStream(true)
            .start();
    x.getInputStream().readAllBytes();
    x.waitFor();
    assertEquals("#!/bin/sh\necho hi\n", Files.readString(out.resolve("bin/hello")));
  }
}
