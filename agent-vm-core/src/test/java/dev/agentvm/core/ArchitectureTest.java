package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Keeps the module rules of ARCHITECTURE.md true by reading the sources' imports. */
class ArchitectureTest {
  private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  private static final Pattern IMPORT =
      Pattern.compile("^import (?:static )?([\\w.]+)", Pattern.MULTILINE);

  private static List<String> violations(String module, String pkgDir, Pattern allowed)
      throws IOException {
    Path src = ROOT.resolve(module).resolve("src/main/java").resolve(pkgDir);
    List<String> bad = new ArrayList<>();
    try (Stream<Path> files = Files.walk(src)) {
      for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
        Matcher m = IMPORT.matcher(Files.readString(f));
        while (m.find()) {
          if (!allowed.matcher(m.group(1)).matches() && !inJavaBase(m.group(1))) {
            bad.add(ROOT.relativize(f) + ": " + m.group(1));
          }
        }
      }
    }
    return bad;
  }

  /** Whether an imported name (a class, or a static member of one) comes from module java.base. */
  private static boolean inJavaBase(String imported) {
    String name = imported;
    while (name.contains(".")) {
      try {
        return "java.base".equals(Class.forName(name, false, null).getModule().getName());
      } catch (ClassNotFoundException e) {
        name = name.substring(0, name.lastIndexOf('.')); // a static member: try its class
      }
    }
    return false;
  }

  @Test
  void libvirtIsConfinedToOneInternalPackage() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module :
        List.of(
            "agent-vm-core",
            "agent-vm-network",
            "agent-vm-storage",
            "agent-vm-execution",
            "examples")) {
      Path src = ROOT.resolve(module).resolve("src/main/java");
      try (Stream<Path> files = Files.walk(src)) {
        for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
          if (f.toString().contains("/dev/agentvm/core/internal/libvirt/")) {
            continue;
          }
          if (Files.readString(f).contains("org.libvirt")) {
            bad.add(ROOT.relativize(f).toString());
          }
        }
      }
    }
    assertEquals(List.of(), bad, "org.libvirt used outside dev.agentvm.core.internal.libvirt");
  }

  @Test
  void noModuleReachesIntoCoreInternals() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module :
        List.of("agent-vm-network", "agent-vm-storage", "agent-vm-execution", "examples")) {
      Path src = ROOT.resolve(module).resolve("src/main/java");
      if (!Files.isDirectory(src)) {
        continue;
      }
      try (Stream<Path> files = Files.walk(src)) {
        for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
          if (Files.readString(f).contains("dev.agentvm.core.internal")) {
            bad.add(ROOT.relativize(f).toString());
          }
        }
      }
    }
    assertEquals(List.of(), bad, "dev.agentvm.core.internal is not API");
  }

  @Test
  void protocolUsesJavaBaseOnly() throws IOException {
    assertEquals(
        List.of(),
        violations(
            "agent-vm-protocol",
            "dev/agentvm/protocol",
            Pattern.compile("dev\\.agentvm\\.protocol\\..*")));
  }

  @Test
  void guestAgentUsesJavaBaseAndProtocolOnly() throws IOException {
    assertEquals(
        List.of(),
        violations(
            "agent-vm-guest",
            "dev/agentvm/guest/agent",
            Pattern.compile("dev\\.agentvm\\.protocol\\..*")));
  }
}
