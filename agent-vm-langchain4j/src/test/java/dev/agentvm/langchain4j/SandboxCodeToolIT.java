package dev.agentvm.langchain4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The code tool on real sandboxes: per call, per conversation, and its limits. */
class SandboxCodeToolIT extends RealLibvirtTest {
  private static SandboxSpec spec;

  @BeforeAll
  static void image() throws Exception {
    MicroImage python = MicroImageBuilder.create().packages(MicroImage.PYTHON).build();
    spec = SandboxSpec.defaults().withImage(python).withNamePrefix(TestVms.PREFIX + "lc4j-");
    // each call's sandbox is restored from the warm image (one boot here instead of one per call)
    try (Sandboxes sandboxes = Sandboxes.open(conn)) {
      sandboxes.warmUp(spec);
    }
  }

  @Test
  void eachCallGetsAFreshSandboxAndItsOutputBack() throws Exception {
    try (Sandboxes sandboxes = Sandboxes.open(conn);
        SandboxCodeTool tool =
            SandboxCodeTool.builder(sandboxes).spec(spec).maxOutputChars(300).build()) {
      String r = tool.execute("open('/workspace/a.txt', 'w').write('x')\nprint(6 * 7)");
      assertTrue(r.startsWith("exit code: 0\nstdout:\n42\n"), r);
      assertTrue(r.contains("a.txt (1 B)"), r);
      String again = tool.runCode(null, "import os\nprint(os.path.exists('/workspace/a.txt'))");
      assertTrue(again.contains("stdout:\nFalse\n"), "a fresh sandbox: " + again);
      // one sandbox for three answers: an exit code, standard error, and output over the bound
      String loud =
          tool.execute(
              "import sys\nprint('y' * 5000)\nprint('oops', file=sys.stderr)\nsys.exit(3)");
      assertTrue(loud.startsWith("exit code: 3\n"), loud);
      assertTrue(loud.contains("stderr:\noops\n"), loud);
      assertTrue(loud.contains("[stdout cut: print less]"), loud);
      assertTrue(loud.length() < 1000, "bounded: " + loud.length());
      assertTrue(tool.execute("x".repeat(SandboxCodeTool.MAX_CODE_CHARS + 1)).startsWith("error:"));
      assertTrue(sandboxes.list().isEmpty(), "nothing kept: " + sandboxes.list());
    }
  }

  @Test
  void aConversationKeepsItsSandboxUntilItEnds() throws Exception {
    try (Sandboxes sandboxes = Sandboxes.open(conn)) {
      SandboxCodeTool tool =
          SandboxCodeTool.builder(sandboxes)
              .spec(spec)
              .perConversation(true)
              .timeout(Duration.ofSeconds(5))
              .build();
      tool.runCode("alice", "open('/workspace/notes.txt', 'w').write('alice was here')");
      String later = tool.runCode("alice", "print(open('/workspace/notes.txt').read())");
      assertTrue(later.contains("alice was here"), later);
      String other = tool.runCode("bob", "import os\nprint(os.listdir('/workspace'))");
      assertFalse(other.contains("notes.txt"), "bob has a sandbox of his own: " + other);
      assertTrue(tool.sandbox("alice").isPresent());
      assertEquals(2, sandboxes.list().size());

      String slow = tool.runCode("bob", "import time\ntime.sleep(60)");
      assertTrue(slow.startsWith("timed out after 5 s"), slow);

      tool.endConversation("alice");
      assertTrue(tool.sandbox("alice").isEmpty());
      tool.close();
      assertTrue(sandboxes.list().isEmpty(), "closed with the tool");
      assertTrue(tool.execute("print(1)").startsWith("error: the code tool is closed"));
      assertThrows(
          IllegalArgumentException.class,
          () -> SandboxCodeTool.builder(sandboxes).maxOutputChars(10));
      assertThrows(
          IllegalArgumentException.class, () -> SandboxCodeTool.builder(sandboxes).interpreter());
    }
  }
}
