package dev.agentvm.image;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The host libraries a binary links against, as {@code ldd} reports them. */
final class SharedLibraries {
  private SharedLibraries() {}

  private static final Pattern LDD_LINE = Pattern.compile("(?:=>\\s*)?(/\\S+)\\s+\\(0x");

  /** The absolute paths of the shared libraries (and loader) a binary needs, from {@code ldd}. */
  static List<String> sharedLibraries(Path binary, Set<String> provided) throws IOException {
    String out =
        new String(
            HostCommands.runForBytes(PathParts.parent(binary), "ldd", binary.toString()),
            StandardCharsets.UTF_8);
    List<String> libs = new ArrayList<>();
    for (String line : out.split("\n", -1)) {
      if (line.contains("not found") && !provided.contains(line.trim().split("\\s+", -1)[0])) {
        throw new ImageBuildException(binary + " needs a library the host lacks: " + line.trim());
      }
      Matcher m = LDD_LINE.matcher(line);
      if (m.find()) {
        libs.add(m.group(1));
      }
    }
    return libs;
  }
}
