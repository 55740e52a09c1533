package dev.agentvm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The command line's shape: help, usage errors, and the checks that need no libvirt. */
class AgentVmCliTest {
  @TempDir Path tmp;

  static final class Run {
    final int code;
    final String out;
    final String err;

    Run(String... args) {
      CommandLine cl = AgentVmCli.commandLine();
      StringWriter o = new StringWriter();
      StringWriter e = new StringWriter();
      cl.setOut(new PrintWriter(o, true));
      cl.setErr(new PrintWriter(e, true));
      code = cl.execute(args);
      out = o.toString();
      err = e.toString();
    }
  }

  @Test
  void everyCommandHasHelpAndUsageErrorsExitTwo() {
    Run top = new Run("--help");
    assertEquals(0, top.code);
    for (String c : new String[] {"doctor", "ps", "logs", "exec", "kill", "reap"}) {
      assertTrue(top.out.contains(c), top.out);
      Run h = new Run(c, "--help");
      assertEquals(0, h.code, c);
      assertTrue(h.out.contains("Usage: agent-vm " + c), h.out);
    }
    assertEquals(2, new Run("frobnicate").code);
    assertEquals(2, new Run("logs").code, "a missing VM name");
    assertEquals(2, new Run("exec", "some-id").code, "no command after the id");
    assertEquals(0, new Run("--version").code);
    assertEquals(0, new Run().code, "no command: the usage");
  }

  @Test
  void aGuestsConsoleCannotDriveTheOperatorsTerminal() {
    String guest = "ok\u001b[2J\u001b]0;owned\u0007\r\n\tline\u202e\u0085\u00e9";
    String shown =
        new String(
            LogsCommand.escaped(guest.getBytes(StandardCharsets.UTF_8)), StandardCharsets.UTF_8);
    assertEquals("ok\\x1b[2J\\x1b]0;owned\\x07\\x0d\n\tline<U+202E>\\x85\u00e9", shown);
    byte[] notUtf8 = {'a', (byte) 0xff, 'b'};
    assertEquals("a\ufffdb", new String(LogsCommand.escaped(notUtf8), StandardCharsets.UTF_8));
  }

  @Test
  void logsRefusesNamesThatAreNotVmNames() {
    Run r = new Run("logs", "../../etc");
    assertEquals(1, r.code);
    assertTrue(r.err.contains("not a VM name"), r.err);
    assertEquals(1, new Run("logs", "agentvm-no-such-vm-" + System.nanoTime()).code);
  }

  @Test
  void diskAndImageChecksSayWhatIsWrong() throws Exception {
    DoctorCommand.Check ok = DoctorCommand.space("state", tmp.resolve("not/yet/made"));
    assertTrue(ok.verdict().equals("ok") || ok.verdict().equals("warn"), ok.toString());
    assertTrue(ok.detail().contains("MiB free"), ok.detail());
    assertEquals("warn", DoctorCommand.images(tmp.resolve("images")).verdict());
    Files.createDirectories(tmp.resolve("images"));
    assertEquals("warn", DoctorCommand.images(tmp.resolve("images")).verdict());
    Path img = Files.createDirectories(tmp.resolve("images/micro-abc"));
    Files.write(img.resolve("vmlinuz"), new byte[3 << 20]);
    DoctorCommand.Check built = DoctorCommand.images(tmp.resolve("images"));
    assertEquals("ok", built.verdict());
    assertTrue(built.detail().startsWith("1 image(s), 3 MiB"), built.detail());
    assertEquals("virtualization", DoctorCommand.virtualization(false).name());
  }

  @Test
  void agesReadLikeAnOperatorWouldSayThem() {
    assertEquals("59s", PsCommand.age(59));
    assertEquals("5m", PsCommand.age(300));
    assertEquals("3h", PsCommand.age(3 * 3600));
    assertEquals("4d", PsCommand.age(4 * 86_400));
  }
}
