package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import org.junit.jupiter.api.Test;

/**
 * The class list the guest runtime's CDS archive is made from: the JDK's own, the recorded agent
 * list and every class of the agent jar. That a guest then loads the agent from the archive is
 * proven in a real guest ({@code VmLifecycleIT}).
 */
class AgentClassListTest {
  @Test
  void holdsTheJdksListTheRecordingAndEveryAgentClass() throws Exception {
    byte[] jar = MicroImageBuilder.agentJar();
    List<String> list =
        new String(
                MicroImageBuilder.classList(
                    "java/lang/Object\n@lambda-form-invoker x".getBytes(StandardCharsets.UTF_8),
                    jar),
                StandardCharsets.UTF_8)
            .lines()
            .toList();
    assertEquals("java/lang/Object", list.get(0));
    assertEquals("@lambda-form-invoker x", list.get(1)); // the JDK's last line ended
    assertTrue(list.contains("dev/agentvm/guest/agent/GuestAgent"), "recorded or from the jar");
    assertTrue(
        list.stream().anyMatch(l -> l.startsWith("@lambda-proxy dev/agentvm/guest/agent/")),
        "the recording's lambdas");
    int classes = 0;
    try (ZipInputStream in = new ZipInputStream(new java.io.ByteArrayInputStream(jar))) {
      for (ZipEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
        String name = e.getName();
        if (name.endsWith(".class")) {
          classes++;
          assertTrue(list.contains(name.substring(0, name.length() - 6)), name);
        }
      }
    }
    assertTrue(classes > 20, "the agent jar's classes: " + classes);
    assertFalse(list.stream().anyMatch(l -> l.contains("module-info")), "no module-info");
  }
}
