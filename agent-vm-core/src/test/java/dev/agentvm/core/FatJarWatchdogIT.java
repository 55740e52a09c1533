package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.AgentVmPaths;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The watchdog starts from a Spring Boot executable jar, where the library's classes are in jars
 * nested in the application's jar and a plain {@code java -cp app.jar} cannot load them: an
 * application packaged that way and killed with SIGKILL still has its VM reaped within seconds. The
 * jar is built here with Spring Boot's own loader (3.5, the Boot 3 line), in Boot's layout.
 */
class FatJarWatchdogIT extends RealLibvirtTest {
  @TempDir Path tmp;

  @Test
  void aKilledSpringBootApplicationsVmIsReapedByItsWatchdog() throws Exception {
    Path app = bootJar(tmp.resolve("app.jar"));
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();

    // the reason for the launcher: the class path alone does not reach the nested jars
    Process plain =
        new ProcessBuilder(
                java, "-cp", app.toString(), "dev.agentvm.core.internal.OwnerWatchdog", "x@y")
            .redirectErrorStream(true)
            .start();
    plain.getOutputStream().close();
    String said = new String(plain.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(plain.waitFor(30, TimeUnit.SECONDS));
    assertNotEquals(0, plain.exitValue(), said);
    assertTrue(said.contains("ClassNotFoundException"), said);

    String name = TestVms.name("bootjar");
    Path runDir = AgentVmPaths.runDir(name);
    ProcessBuilder pb =
        new ProcessBuilder(java, "-jar", app.toString(), name).redirectErrorStream(true);
    pb.environment().put("AGENTVM_WATCHDOG", "on"); // the build turns it off for other tests
    Process child = pb.start();
    try {
      ReaperIT.awaitReady(child);
      String marker = child.pid() + "@";
      List<ProcessHandle> watchdogs = List.of();
      for (int i = 0; i < 50 && watchdogs.isEmpty(); i++) {
        watchdogs =
            ProcessHandle.allProcesses()
                .filter(
                    p ->
                        p.info()
                            .commandLine()
                            .map(
                                c ->
                                    c.contains(
                                            "-Dloader.main=dev.agentvm.core.internal.OwnerWatchdog")
                                        && c.contains(marker))
                            .orElse(false))
                .toList();
        Thread.sleep(100);
      }
      assertEquals(1, watchdogs.size(), "one watchdog, started through Boot's launcher");
      assertTrue(conn.domainNames().contains(name));

      WatchdogIT.killAndAwaitReaped(conn, child, name, runDir, "FatJarWatchdogIT");
      assertTrue(watchdogs.get(0).onExit().get(30, TimeUnit.SECONDS) != null);
    } finally {
      child.destroyForcibly();
    }
  }

  /**
   * This test's class path as a Spring Boot executable jar: directories into {@code
   * BOOT-INF/classes}, jars stored (uncompressed, as Boot requires) in {@code BOOT-INF/lib}, Boot's
   * loader at the root, {@code OrphanMaker} as the start class.
   */
  static Path bootJar(Path out) throws IOException {
    Manifest mf = new Manifest();
    Attributes a = mf.getMainAttributes();
    a.put(Attributes.Name.MANIFEST_VERSION, "1.0");
    a.put(Attributes.Name.MAIN_CLASS, "org.springframework.boot.loader.launch.JarLauncher");
    a.putValue("Start-Class", OrphanMaker.class.getName());
    a.putValue("Spring-Boot-Classes", "BOOT-INF/classes/");
    a.putValue("Spring-Boot-Lib", "BOOT-INF/lib/");
    Set<String> seen = new HashSet<>();
    try (JarOutputStream jar = new JarOutputStream(Files.newOutputStream(out), mf)) {
      seen.add("META-INF/MANIFEST.MF");
      for (String entry : System.getProperty("java.class.path").split(File.pathSeparator, -1)) {
        Path p = Path.of(entry);
        if (Files.isDirectory(p)) {
          addTree(jar, p, "BOOT-INF/classes/", seen);
        } else if (p.getFileName().toString().startsWith("spring-boot-loader")) {
          addLoader(jar, p, seen);
        } else if (Files.isRegularFile(p) && p.toString().endsWith(".jar")) {
          String n = "BOOT-INF/lib/" + p.getFileName();
          if (seen.add(n)) {
            directories(jar, n, seen);
            stored(jar, n, Files.readAllBytes(p));
          }
        }
      }
    }
    return out;
  }

  private static void addTree(JarOutputStream jar, Path root, String prefix, Set<String> seen)
      throws IOException {
    List<Path> files = new ArrayList<>();
    try (Stream<Path> s = Files.walk(root)) {
      s.filter(Files::isRegularFile).sorted().forEach(files::add);
    }
    for (Path f : files) {
      String n = prefix + root.relativize(f).toString().replace(File.separatorChar, '/');
      if (!n.endsWith("MANIFEST.MF") && seen.add(n)) {
        directories(jar, n, seen);
        jar.putNextEntry(new JarEntry(n));
        Files.copy(f, jar);
        jar.closeEntry();
      }
    }
  }

  /** Boot finds its class path roots by their directory entries: every parent gets one. */
  private static void directories(JarOutputStream jar, String file, Set<String> seen)
      throws IOException {
    for (int i = file.indexOf('/'); i >= 0; i = file.indexOf('/', i + 1)) {
      String dir = file.substring(0, i + 1);
      if (seen.add(dir)) {
        jar.putNextEntry(new JarEntry(dir));
        jar.closeEntry();
      }
    }
  }

  private static void addLoader(JarOutputStream jar, Path loader, Set<String> seen)
      throws IOException {
    try (JarFile j = new JarFile(loader.toFile())) {
      for (JarEntry e : java.util.Collections.list(j.entries())) {
        if (!e.isDirectory() && !e.getName().startsWith("META-INF/") && seen.add(e.getName())) {
          directories(jar, e.getName(), seen);
          jar.putNextEntry(new JarEntry(e.getName()));
          try (InputStream in = j.getInputStream(e)) {
            in.transferTo(jar);
          }
          jar.closeEntry();
        }
      }
    }
  }

  private static void stored(JarOutputStream jar, String name, byte[] data) throws IOException {
    JarEntry e = new JarEntry(name);
    e.setMethod(ZipEntry.STORED);
    e.setSize(data.length);
    e.setCompressedSize(data.length);
    CRC32 crc = new CRC32();
    crc.update(data);
    e.setCrc(crc.getValue());
    jar.putNextEntry(e);
    jar.write(data);
    jar.closeEntry();
  }
}
