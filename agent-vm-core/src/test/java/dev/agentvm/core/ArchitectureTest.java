package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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

  /** Every module with its sources, in dependency order. */
  private static final List<String> MODULES =
      List.of(
          "agent-vm-protocol",
          "agent-vm-internal",
          "agent-vm-guest",
          "agent-vm-image",
          "agent-vm-core",
          "agent-vm-network",
          "agent-vm-storage",
          "agent-vm-execution",
          "agent-vm-junit",
          "agent-vm-git",
          "agent-vm-cli",
          "agent-vm-langchain4j",
          "examples",
          "benchmarks");

  /**
   * The agent-vm packages each module may import (its own included): the module graph of
   * ARCHITECTURE.md. Examples and benchmarks may use every public package, and nothing internal.
   */
  private static final Map<String, String> ALLOWED =
      Map.ofEntries(
          Map.entry("agent-vm-protocol", "protocol"),
          Map.entry("agent-vm-internal", "internal"),
          Map.entry("agent-vm-guest", "protocol|guest"),
          Map.entry("agent-vm-image", "protocol|internal|image"),
          Map.entry("agent-vm-core", "protocol|internal|core"),
          Map.entry("agent-vm-network", "protocol|internal|core|network"),
          Map.entry("agent-vm-storage", "protocol|internal|core|storage"),
          Map.entry("agent-vm-execution", "protocol|internal|core|network|storage|image|execution"),
          Map.entry("agent-vm-junit", "protocol|internal|core|storage|image|execution|junit"),
          Map.entry("agent-vm-git", "protocol|internal|core|storage|image|execution|git"),
          Map.entry("agent-vm-cli", "protocol|internal|core|network|storage|image|execution|cli"),
          Map.entry(
              "agent-vm-langchain4j", "protocol|core|network|storage|image|execution|langchain4j"),
          Map.entry(
              "examples",
              "protocol|core|network|storage|image|execution|junit|git|langchain4j|examples"),
          Map.entry(
              "benchmarks", "protocol|core|network|storage|image|execution|junit|git|benchmarks"));

  private static final Pattern AGENTVM_IMPORT =
      Pattern.compile("^import (?:static )?dev\\.agentvm\\.(\\w+)([\\w.]*)", Pattern.MULTILINE);

  private static List<Path> sources(String module) throws IOException {
    Path src = ROOT.resolve(module).resolve("src/main/java");
    if (!Files.isDirectory(src)) {
      return List.of();
    }
    try (Stream<Path> files = Files.walk(src)) {
      return files.filter(p -> p.toString().endsWith(".java")).toList();
    }
  }

  @Test
  void modulesImportOnlyWhatTheyDependOn() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module : MODULES) {
      Pattern allowed = Pattern.compile(ALLOWED.get(module));
      for (Path f : sources(module)) {
        Matcher m = AGENTVM_IMPORT.matcher(Files.readString(f));
        while (m.find()) {
          String top = m.group(1);
          boolean internal =
              (m.group(2).startsWith(".internal") && !top.equals(moduleTopPackage(module)))
                  || (top.equals("internal") && !module.startsWith("agent-vm-"));
          if (!allowed.matcher(top).matches() || internal) {
            bad.add(ROOT.relativize(f) + ": dev.agentvm." + top + m.group(2));
          }
        }
      }
    }
    assertEquals(List.of(), bad, "imports against the module graph (ARCHITECTURE.md)");
  }

  private static String moduleTopPackage(String module) {
    return module.replace("agent-vm-", "");
  }

  @Test
  void libvirtIsConfinedToOneInternalPackage() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module : MODULES) {
      for (Path f : sources(module)) {
        if (f.toString().contains("/dev/agentvm/core/internal/libvirt/")) {
          continue;
        }
        if (Files.readString(f).contains("org.libvirt")) {
          bad.add(ROOT.relativize(f).toString());
        }
      }
    }
    assertEquals(List.of(), bad, "org.libvirt used outside dev.agentvm.core.internal.libvirt");
  }

  @Test
  void nativeCallsAreConfinedToTheLibvirtPackage() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module : MODULES) {
      for (Path f : sources(module)) {
        if (!f.toString().contains("/dev/agentvm/core/internal/libvirt/")
            && Files.readString(f).contains("com.sun.jna")) {
          bad.add(ROOT.relativize(f).toString());
        }
      }
    }
    assertEquals(List.of(), bad, "JNA used outside dev.agentvm.core.internal.libvirt");
  }

  /**
   * Each kind of libvirt XML is built and parsed in one class, through the DOM: domain XML in
   * core's DomainXmlWriter and DomainXmlReader, network and nwfilter XML in agent-vm-network's
   * NetworkXml, over the safe parser of SecureXml.
   */
  private static final List<String> XML_CLASSES =
      List.of(
          "agent-vm-core/src/main/java/dev/agentvm/core/internal/libvirt/DomainXmlReader.java",
          "agent-vm-core/src/main/java/dev/agentvm/core/internal/libvirt/DomainXmlWriter.java",
          "agent-vm-internal/src/main/java/dev/agentvm/internal/SecureXml.java",
          "agent-vm-network/src/main/java/dev/agentvm/network/NetworkXml.java");

  private static final Pattern XML_API =
      Pattern.compile("SecureXml|javax\\.xml\\.parsers|javax\\.xml\\.transform|org\\.xml\\.sax");

  @Test
  void xmlIsBuiltAndParsedInOnePlacePerKind() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module : MODULES) {
      for (Path f : sources(module)) {
        String rel = ROOT.relativize(f).toString();
        if (!XML_CLASSES.contains(rel) && XML_API.matcher(Files.readString(f)).find()) {
          bad.add(rel);
        }
      }
    }
    assertEquals(List.of(), bad, "XML parsed or built outside " + XML_CLASSES);
  }

  /**
   * A regular expression, or a text search, whose literal is a piece of markup ({@code <tag},
   * {@code attr='}, {@code attr="}): XML read as text. The DOM reads it instead.
   */
  private static final Pattern TEXT_ON_XML =
      Pattern.compile(
          "(Pattern\\.compile|replaceAll|replaceFirst|matches|split|contains|indexOf)"
              + "\\(\\s*\"[^\"]*(<[A-Za-z/!?]|='|=\\\\\")");

  @Test
  void noXmlIsReadAsText() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module : MODULES) {
      for (Path f : sources(module)) {
        Matcher m = TEXT_ON_XML.matcher(Files.readString(f));
        while (m.find()) {
          bad.add(ROOT.relativize(f) + ": " + m.group());
        }
      }
    }
    assertEquals(List.of(), bad, "XML read with regular expressions or text search");
  }

  @Test
  void noModuleReachesIntoCoreInternals() throws IOException {
    List<String> bad = new ArrayList<>();
    for (String module : MODULES) {
      if (module.equals("agent-vm-core")) {
        continue;
      }
      for (Path f : sources(module)) {
        if (Files.readString(f).contains("dev.agentvm.core.internal")) {
          bad.add(ROOT.relativize(f).toString());
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
            "dev/agentvm/guest",
            Pattern.compile("dev\\.agentvm\\.(protocol|guest)\\..*")));
  }

  @Test
  void sharedInternalsUseJavaBaseAndSlf4jOnly() throws IOException {
    assertEquals(
        List.of(),
        violations(
            "agent-vm-internal",
            "dev/agentvm/internal",
            Pattern.compile(
                "dev\\.agentvm\\.internal\\..*|org\\.slf4j\\..*|org\\.jspecify\\..*"
                    + "|javax\\.xml\\..*|org\\.w3c\\.dom\\..*|org\\.xml\\.sax\\..*")));
  }
}
