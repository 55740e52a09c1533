package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.longs;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PackageDiskBuilderTest {
  @TempDir Path tmp;

  @Test
  void readsApt_sOwnOutput() {
    String out =
        """
        NOTE: This is only a simulation!
        Inst libc6 (2.36-9+deb12u13 Debian:12.15/oldstable [amd64])
        Inst git-man [1:2.39.5-0+deb12u3] (1:2.39.5-0+deb12u3 Debian:12.15/oldstable [all])
        Conf libc6 (2.36-9+deb12u13 Debian:12.15/oldstable [amd64])
        Inst python3.11-minimal (3.11.2-6+deb12u9 Debian-Security:12/oldstable-security [amd64])
        """;
    assertEquals(
        Map.of("libc6", "2.36-9+deb12u13", "python3.11-minimal", "3.11.2-6+deb12u9"),
        PackageDiskBuilder.parseSimulation(out));
  }

  /** Any mix of Inst lines (with or without an installed version), Conf and noise lines. */
  @Test
  void everyInstLineIsFoundAndExcludedPackagesNeverAre() {
    qt().forAll(integers().between(0, 40), longs().all())
        .checkAssert(
            (n, seed) -> {
              Random r = new Random(seed);
              Map<String, String> expected = new TreeMap<>();
              List<String> lines = new ArrayList<>();
              for (int i = 0; i < n; i++) {
                boolean excluded = r.nextInt(5) == 0;
                String name =
                    excluded
                        ? PackageDiskBuilder.EXCLUDED.get(
                            r.nextInt(PackageDiskBuilder.EXCLUDED.size()))
                        : "lib" + i + (r.nextBoolean() ? "+x.y-z" : "");
                String version =
                    (r.nextBoolean() ? "1:" : "") + i + "." + r.nextInt(99) + "-" + r.nextInt(9);
                String old = r.nextBoolean() ? "[0.1] " : "";
                lines.add("Inst " + name + " " + old + "(" + version + " Debian:12 [amd64])");
                lines.add("Conf " + name + " (" + version + " Debian:12 [amd64])");
                if (r.nextBoolean()) {
                  lines.add("Some noise (" + i + ")");
                }
                if (!excluded) {
                  expected.put(name, version);
                }
              }
              Collections.shuffle(lines, r);
              assertEquals(expected, PackageDiskBuilder.parseSimulation(String.join("\n", lines)));
            });
  }

  @Test
  void excludedPackagesBecomeInstalledStanzas() {
    String show =
        """
        Package: perl
        Version: 5.36.0-7
        Architecture: amd64
        Description: x

        Package: git-man
        Version: 1:2.39.5-0
        Architecture: all

        """;
    assertEquals(
        """
        Package: perl
        Status: install ok installed
        Version: 5.36.0-7
        Architecture: amd64

        Package: git-man
        Status: install ok installed
        Version: 1:2.39.5-0
        Architecture: all

        """,
        PackageDiskBuilder.statusOf(show));
  }

  @Test
  void mergeFoldsATopLevelDirectoryIntoUsrKeepingUsrsFiles() throws Exception {
    Path root = tmp.resolve("root");
    Files.createDirectories(root.resolve("lib/x86_64-linux-gnu"));
    Files.createDirectories(root.resolve("usr/lib/x86_64-linux-gnu"));
    Files.writeString(root.resolve("lib/x86_64-linux-gnu/liba.so"), "a");
    Files.writeString(root.resolve("lib/x86_64-linux-gnu/both.so"), "from /lib");
    Files.writeString(root.resolve("usr/lib/x86_64-linux-gnu/both.so"), "from /usr/lib");
    Files.createSymbolicLink(root.resolve("lib/x86_64-linux-gnu/link.so"), Path.of("liba.so"));
    Files.createDirectories(root.resolve("bin"));
    Files.writeString(root.resolve("bin/tool"), "t");
    Files.createSymbolicLink(root.resolve("lib64"), Path.of("usr/lib64"));

    PackageDiskBuilder.mergeInto(root.resolve("lib"), root.resolve("usr/lib"));
    PackageDiskBuilder.mergeInto(root.resolve("bin"), root.resolve("usr/bin"));
    PackageDiskBuilder.mergeInto(root.resolve("lib64"), root.resolve("usr/lib64"));

    assertFalse(Files.exists(root.resolve("lib")));
    assertFalse(Files.exists(root.resolve("bin")));
    assertFalse(Files.exists(root.resolve("lib64"), java.nio.file.LinkOption.NOFOLLOW_LINKS));
    assertEquals("a", Files.readString(root.resolve("usr/lib/x86_64-linux-gnu/liba.so")));
    assertEquals(
        "from /usr/lib", Files.readString(root.resolve("usr/lib/x86_64-linux-gnu/both.so")));
    assertTrue(Files.isSymbolicLink(root.resolve("usr/lib/x86_64-linux-gnu/link.so")));
    assertEquals("t", Files.readString(root.resolve("usr/bin/tool")));
  }
}
