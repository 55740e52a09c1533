package dev.agentvm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line's shape: help, usage errors, and the checks that need no libvirt. */
class AgentVmCliTest {
  @TempDir Path tmp;

  @Test
  void everyCommandHasHelpAndUsageErrorsExitTwo() {
    CliRun top = new CliRun("--help");
    assertEquals(0, top.code);
    for (String c :
        new String[] {"doctor", "ps", "logs", "exec", "kill", "reap", "prune", "image"}) {
      assertTrue(top.out.contains(c), top.out);
      CliRun h = new CliRun(c, "--help");
      assertEquals(0, h.code, c);
      assertTrue(h.out.contains("Usage: agent-vm " + c), h.out);
    }
    assertEquals(2, new CliRun("frobnicate").code);
    assertEquals(2, new CliRun("logs").code, "a missing VM name");
    assertEquals(2, new CliRun("exec", "some-id").code, "no command after the id");
    assertEquals(0, new CliRun("--version").code);
    assertEquals(0, new CliRun().code, "no command: the usage");
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
    CliRun r = new CliRun("logs", "../../etc");
    assertEquals(1, r.code);
    assertTrue(r.err.contains("not a VM name"), r.err);
    assertEquals(1, new CliRun("logs", "agentvm-no-such-vm-" + System.nanoTime()).code);
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

  private static Path dir(Path p, long ageDays) throws java.io.IOException {
    Files.createDirectories(p);
    Files.writeString(p.resolve("data"), "x".repeat(5000));
    Files.setLastModifiedTime(
        p,
        java.nio.file.attribute.FileTime.from(
            java.time.Instant.now().minus(java.time.Duration.ofDays(ageDays))));
    return p;
  }

  private static void manifest(Path dir, String packages) throws java.io.IOException {
    Files.writeString(dir.resolve("manifest.properties"), "packages=" + packages + "\n");
  }

  @Test
  void pruneRemovesOldImagesDisksAndOutputsButNotTheNewestOrAPinnedOne() throws Exception {
    Path cache = tmp.resolve("cache");
    Path images = cache.resolve("images");
    Path oldMicro = dir(images.resolve("micro-old"), 9);
    Path pinnedMicro = dir(images.resolve("micro-pinned"), 8);
    Path newMicro = dir(images.resolve("micro-new"), 1);
    Path holder = Files.writeString(tmp.resolve("paused-sandbox"), "");
    dev.agentvm.image.ImagePins.pin(pinnedMicro.resolve("data"), holder);
    Files.setLastModifiedTime(
        pinnedMicro,
        java.nio.file.attribute.FileTime.from(
            java.time.Instant.now().minus(java.time.Duration.ofDays(8))));
    Path oldJq = dir(images.resolve("packages-a1"), 5);
    manifest(oldJq, "jq");
    Path newJq = dir(images.resolve("packages-a2"), 2);
    manifest(newJq, "jq");
    Path git = dir(images.resolve("packages-b"), 6);
    manifest(git, "git");
    Path deb = Files.createDirectories(cache.resolve("debs")).resolve("jq_1.6.deb");
    Files.writeString(deb, "deb");
    Path outputs = tmp.resolve("outputs");
    Path oldOut = dir(outputs.resolve("exec-0123456789ab"), 10);
    Path newOut = dir(outputs.resolve("exec-0123456789ac"), 0);
    Path notOurs = dir(outputs.resolve("photos"), 30);
    String[] where = {"--cache", cache.toString(), "--outputs", outputs.toString()};

    CliRun dry = new CliRun(concat(new String[] {"prune", "--dry-run", "--json"}, where));
    assertEquals(0, dry.code, dry.err);
    for (Path p : List.of(oldMicro, oldJq, oldOut)) {
      assertTrue(dry.out.contains(p.toString()), p + " listed: " + dry.out);
      assertTrue(Files.exists(p), "a dry run removes nothing");
    }
    assertTrue(dry.out.contains("\"keptPinned\" : [ \"" + pinnedMicro), dry.out);

    CliRun r = new CliRun(concat(new String[] {"prune", "--downloads"}, where));
    assertEquals(0, r.code, r.err);
    for (Path gone : List.of(oldMicro, oldJq, oldOut, deb)) {
      assertFalse(Files.exists(gone), gone + " removed: " + r.out);
    }
    for (Path kept : List.of(newMicro, pinnedMicro, newJq, git, newOut, notOurs)) {
      assertTrue(Files.exists(kept), kept + " kept: " + r.out);
    }
    assertTrue(r.out.contains("kept " + pinnedMicro + ": a paused sandbox needs it"), r.out);
    assertTrue(r.out.matches("(?s).*freed [0-9.]+ MB\\s*"), r.out);

    assertEquals(2, new CliRun("prune", "--outputs-older-than", "soon").code);
  }

  private static String[] concat(String[] a, String[] b) {
    String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  @Test
  void agesAreDaysHoursMinutesOrIso() {
    assertEquals(java.time.Duration.ofDays(7), PruneCommand.parseAge("7d"));
    assertEquals(java.time.Duration.ofHours(12), PruneCommand.parseAge("12h"));
    assertEquals(java.time.Duration.ofMinutes(30), PruneCommand.parseAge("30m"));
    assertEquals(java.time.Duration.ofHours(2), PruneCommand.parseAge("PT2H"));
    assertThrows(IllegalArgumentException.class, () -> PruneCommand.parseAge("-PT2H"));
    assertThrows(IllegalArgumentException.class, () -> PruneCommand.parseAge("7 days"));
  }

  @Test
  void theBarFillsWithItsStepsAndKeepsItsWidth() {
    dev.agentvm.image.Progress.Step half =
        new dev.agentvm.image.Progress.Step("micro image", 2, 4, "jlink java.base");
    assertEquals(
        "[############............] 2/4 micro image: jlink java.base", ProgressBar.render(half));
    dev.agentvm.image.Progress.Step unknown =
        new dev.agentvm.image.Progress.Step("pool", 0, 0, "x".repeat(100) + "\u001b");
    String r = ProgressBar.render(unknown);
    assertTrue(r.startsWith("pool: xxx") && r.endsWith("...") && !r.contains("\u001b"), r);
    StringWriter w = new StringWriter();
    ProgressBar bar = new ProgressBar(new PrintWriter(w), true);
    bar.step(half);
    bar.step(new dev.agentvm.image.Progress.Step("micro image", 4, 4, "built"));
    assertTrue(
        w.toString().startsWith("\r[####")
            && w.toString().endsWith("4/4 micro image: built\u001b[K\n"),
        w.toString());
    StringWriter lines = new StringWriter();
    new ProgressBar(new PrintWriter(lines), false).step(half);
    assertEquals("micro image: jlink java.base (2/4)" + System.lineSeparator(), lines.toString());
  }
}
