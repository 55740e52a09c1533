package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.strings;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.AgentErrorException;
import dev.agentvm.core.agent.AgentException;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.core.agent.UnixSocketTransport;
import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.MountSpec;
import dev.agentvm.protocol.StatusReport;
import java.io.ByteArrayOutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The protocol's operations against the real guest agent in one real VM. */
class AgentProtocolIT extends RealLibvirtTest {
  static VMTemplate template;
  static VM vm;
  static AgentClient agent;

  @BeforeAll
  static void boot() {
    template =
        VMTemplate.builder(TestVms.name("proto"))
            .resources(new ResourceProfile(1, 512))
            .boot(TestVms.boot())
            .build();
    vm = conn.define(template);
    vm.start();
    agent = vm.awaitAgent(Duration.ofSeconds(90));
  }

  @AfterAll
  static void shutdown() {
    if (vm != null) {
      vm.close();
      TestVms.assertNothingLeft(conn, template);
    }
  }

  private static ExecResult sh(String script) throws Exception {
    return agent.exec(ExecRequest.script(script, "sh").withTimeout(Duration.ofSeconds(60)));
  }

  @Override
  public void noTestDomainsLeft() {
    // the class's VM lives until @AfterAll; the base class checks for leftovers at the end
  }

  @Test
  void execReturnsStdoutStderrExitCodeAndHonoursEnvCwdStdin() throws Exception {
    ExecResult r =
        agent.exec(
            ExecRequest.script("echo \"foo=$FOO\"; pwd; echo oops >&2; cat; exit 3", "sh")
                .withEnv(Map.of("FOO", "bar baz"))
                .withCwd("/proc")
                .withStdin("from stdin\n".getBytes(StandardCharsets.UTF_8))
                .withTimeout(Duration.ofSeconds(30)));
    assertEquals(3, r.exitCode());
    assertEquals("foo=bar baz\n/proc\nfrom stdin\n", r.stdoutText());
    assertEquals("oops\n", r.stderrText());
    assertFalse(r.timedOut() || r.killed() || r.stdoutTruncated());

    ExecResult argv = agent.exec(ExecRequest.command("/bin/echo", "a b", "c"));
    assertEquals("a b c\n", argv.stdoutText());
    assertEquals(0, argv.exitCode());
  }

  @Test
  void missingCommandOrCwdIsAClearFailureNotAHang(@TempDir Path dir) throws Exception {
    AgentErrorException missing =
        assertThrows(
            AgentErrorException.class,
            () ->
                agent.exec(
                    ExecRequest.command("/no/such/binary").withTimeout(Duration.ofSeconds(30))));
    assertEquals(ErrorCode.COMMAND_NOT_FOUND, missing.code(), missing.getMessage());
    assertTrue(missing.getMessage().contains("/no/such/binary"), missing.getMessage());
    AgentErrorException notOnPath =
        assertThrows(
            AgentErrorException.class, () -> agent.exec(ExecRequest.command("no-such-cmd")));
    assertEquals(ErrorCode.COMMAND_NOT_FOUND, notOnPath.code(), notOnPath.getMessage());
    AgentErrorException badCwd =
        assertThrows(
            AgentErrorException.class,
            () -> agent.exec(ExecRequest.command("true").withCwd("/no/such/dir")));
    assertEquals(ErrorCode.NOT_FOUND, badCwd.code(), badCwd.getMessage());
    assertTrue(badCwd.getMessage().contains("working directory /no/such/dir"), badCwd.getMessage());
    assertFalse(badCwd.getMessage().contains("java."), badCwd.getMessage());
    AgentErrorException notFile =
        assertThrows(
            AgentErrorException.class,
            () -> agent.getFile("/tmp", dir.resolve("got"), Duration.ofSeconds(10)));
    assertEquals(ErrorCode.IS_A_DIRECTORY, notFile.code(), notFile.getMessage());
    AgentErrorException badMount =
        assertThrows(
            AgentErrorException.class,
            () ->
                agent.mount(
                    new MountSpec("no-such-tag", "/mnt/nothing", true), Duration.ofSeconds(30)));
    assertEquals(ErrorCode.MOUNT_FAILED, badMount.code(), badMount.getMessage());
  }

  /** Text that a non-UTF-8 guest would have turned into '?': Latin, symbols, non-BMP. */
  private static final String UNICODE = "ü é © 😀 𝄞 – ✓ 日本語";

  @Test
  void unicodeArgvEnvAndFileNamesRoundTripByteExact(@TempDir Path dir) throws Exception {
    ExecResult argv = agent.exec(ExecRequest.command("printf", "%s", UNICODE));
    assertEquals(0, argv.exitCode(), argv.stderrText());
    assertArrayEquals(UNICODE.getBytes(StandardCharsets.UTF_8), argv.stdout());

    ExecResult env =
        agent.exec(
            ExecRequest.command("sh", "-c", "printf %s \"$V\"").withEnv(Map.of("V", UNICODE)));
    assertArrayEquals(UNICODE.getBytes(StandardCharsets.UTF_8), env.stdout(), env.stderrText());

    byte[] content = ("content " + UNICODE).getBytes(StandardCharsets.UTF_8);
    Path local = Files.write(dir.resolve("local.txt"), content);
    String guestDir = "/tmp/uni-" + UNICODE.replace(' ', '_');
    String guestPath = guestDir + "/f-" + UNICODE.replace(' ', '_') + ".txt";
    agent.putFile(local, guestPath, 0644, Duration.ofSeconds(30));
    // the name on the guest's disk is these UTF-8 bytes (a shell glob prints them raw; busybox ls
    // would print characters above U+02FF as '?' itself)
    ExecResult listed =
        agent.exec(
            ExecRequest.command(
                "sh", "-c", "for f in \"$1\"/*; do printf %s \"$f\"; done", "sh", guestDir));
    assertArrayEquals(
        guestPath.getBytes(StandardCharsets.UTF_8), listed.stdout(), listed.stdoutText());
    // a working directory with such a name, too
    ExecResult pwd = agent.exec(ExecRequest.command("pwd").withCwd(guestDir));
    assertEquals(guestDir + "\n", pwd.stdoutText(), pwd.stderrText());
    Path back = dir.resolve("back.txt");
    agent.getFile(guestPath, back, Duration.ofSeconds(30));
    assertArrayEquals(content, Files.readAllBytes(back));
    sh("rm -rf /tmp/uni-*");
  }

  @Test
  void randomUnicodeThroughTheRealGuestIsByteExact() throws Exception {
    // one VM, a bounded number of examples: each costs a few EXECs under TCG
    qt().withExamples(30)
        .withShrinkCycles(20)
        .forAll(
            strings()
                .betweenCodePoints(1, 0x10FFFF)
                .ofLengthBetween(1, 12)
                .assuming(UnicodeCheck::sendable))
        .checkAssert(
            s -> {
              try {
                byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
                ExecResult a = agent.exec(ExecRequest.command("printf", "%s", s));
                assertArrayEquals(utf8, a.stdout(), "argv " + UnicodeCheck.codePoints(s));
                ExecResult e =
                    agent.exec(
                        ExecRequest.command("sh", "-c", "printf %s \"$V\"")
                            .withEnv(Map.of("V", s)));
                assertArrayEquals(utf8, e.stdout(), "env " + UnicodeCheck.codePoints(s));
                String name = "/tmp/q-" + UnicodeCheck.fileNameSafe(s);
                Path local = Files.createTempFile("uni", ".txt");
                Files.write(local, utf8);
                agent.putFile(local, name, 0644, Duration.ofSeconds(30));
                ExecResult cat = agent.exec(ExecRequest.command("cat", name));
                assertArrayEquals(utf8, cat.stdout(), "file " + UnicodeCheck.codePoints(s));
                // the name on disk is the UTF-8 bytes (not a '?' that both sides mangle alike)
                ExecResult glob = agent.exec(ExecRequest.command("sh", "-c", "printf %s /tmp/q-*"));
                assertArrayEquals(
                    name.getBytes(StandardCharsets.UTF_8),
                    glob.stdout(),
                    "name " + UnicodeCheck.codePoints(s));
                agent.getFile(name, local, Duration.ofSeconds(30));
                assertArrayEquals(utf8, Files.readAllBytes(local));
                agent.exec(ExecRequest.command("rm", "-f", name));
                Files.deleteIfExists(local);
              } catch (Exception ex) {
                throw new AssertionError(ex);
              }
            });
  }

  /** Helpers for Unicode strings that a command line, environment and file name can carry. */
  static final class UnicodeCheck {
    /** No NUL (argv and names cannot hold it) and no unpaired surrogate (UTF-8 cannot). */
    static boolean sendable(String s) {
      if (s.indexOf('\0') >= 0) {
        return false;
      }
      for (int i = 0; i < s.length(); i++) {
        char c = s.charAt(i);
        if (Character.isHighSurrogate(c)) {
          if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
            return false;
          }
          i++;
        } else if (Character.isLowSurrogate(c)) {
          return false;
        }
      }
      return true;
    }

    /** A file name from {@code s}: '/' would make it a path; the rest is kept. */
    static String fileNameSafe(String s) {
      return s.replace('/', '_');
    }

    static String codePoints(String s) {
      return s.codePoints()
          .mapToObj(c -> "U+" + Integer.toHexString(c))
          .collect(java.util.stream.Collectors.joining(" "));
    }
  }

  @Test
  void outputIsStreamedAsItComes() throws Exception {
    ByteArrayOutputStream streamed = new ByteArrayOutputStream();
    List<Long> arrivals = new ArrayList<>();
    long t0 = System.nanoTime();
    ExecResult r =
        agent
            .execAsync(
                ExecRequest.script("echo one; sleep 3; echo two", "sh"),
                new OutputListener() {
                  @Override
                  public void onStdout(byte[] chunk) {
                    synchronized (streamed) {
                      streamed.writeBytes(chunk);
                      arrivals.add((System.nanoTime() - t0) / 1_000_000);
                    }
                  }
                })
            .await(Duration.ofSeconds(60));
    assertEquals("one\ntwo\n", streamed.toString(StandardCharsets.UTF_8));
    assertEquals("one\ntwo\n", r.stdoutText());
    assertEquals(2, arrivals.size());
    // streamed as written: "one" long before "two" (a late first chunk may eat up to 1.5 s)
    assertTrue(arrivals.get(1) - arrivals.get(0) >= 1500, "chunks arrived at " + arrivals + " ms");
  }

  @Test
  void timeoutKillsTheCommandAndAllItsChildren() throws Exception {
    ExecResult r =
        agent.exec(
            ExecRequest.script(
                    "sleep 1001 & sleep 1002 & (sleep 1003; echo never) & echo started; wait", "sh")
                .withTimeout(Duration.ofSeconds(2))
                .withKillGrace(Duration.ofMillis(500)));
    assertTrue(r.timedOut(), r.toString());
    assertEquals("started\n", r.stdoutText());
    assertTrue(r.signal() == 15 || r.signal() == 9, r.toString());
    ExecResult ps = sh("ps -o pid,args | grep -c '[s]leep 100' || true");
    assertEquals(
        "0", ps.stdoutText().trim(), "sleepers left: " + sh("ps -o pid,stat,args").stdoutText());
    // nor zombies: the killed processes must have been reaped, not just stopped
    ExecResult zombies = sh("ps -o stat,args | grep -c '^Z' || true");
    assertEquals(
        "0",
        zombies.stdoutText().trim(),
        "zombies: " + sh("ps -o pid,ppid,stat,args").stdoutText());
  }

  @Test
  void killStopsARunningCommand() throws Exception {
    AgentClient.Execution e =
        agent.execAsync(ExecRequest.script("echo up; exec sleep 1000", "sh"), OutputListener.NONE);
    Thread.sleep(1000);
    e.kill(Duration.ofSeconds(5));
    ExecResult r = e.await(Duration.ofSeconds(30));
    assertTrue(r.killed(), r.toString());
    assertFalse(r.timedOut());
  }

  @Test
  void outputBeyondTheLimitIsDroppedAndFlagged() throws Exception {
    ExecResult r =
        agent.exec(
            ExecRequest.script("head -c 5000000 /dev/zero; echo done >&2", "sh")
                .withOutputLimit(100_000)
                .withTimeout(Duration.ofSeconds(60)));
    assertEquals(0, r.exitCode());
    assertEquals(100_000, r.stdout().length);
    assertTrue(r.stdoutTruncated());
    assertEquals("done\n", r.stderrText());
    assertFalse(r.stderrTruncated());
  }

  @Test
  void twentyMegabyteFileRoundTripKeepsItsSha256(@TempDir Path dir) throws Exception {
    byte[] data = new byte[20 * 1024 * 1024 + 123];
    new Random(42).nextBytes(data);
    Path src = dir.resolve("big.bin");
    Files.write(src, data);
    String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    long t0 = System.nanoTime();
    agent.putFile(src, "/tmp/in/big.bin", 0640, Duration.ofMinutes(2));
    long putMs = (System.nanoTime() - t0) / 1_000_000;
    ExecResult guest = sh("sha256sum /tmp/in/big.bin; stat -c %a /tmp/in/big.bin; ls -a /tmp/in");
    assertTrue(guest.stdoutText().startsWith(sha), guest.stdoutText());
    assertTrue(guest.stdoutText().contains("\n640\n"), guest.stdoutText());
    assertFalse(guest.stdoutText().contains(".part"), "temporary file left: " + guest.stdoutText());
    t0 = System.nanoTime();
    Path back = dir.resolve("back.bin");
    agent.getFile("/tmp/in/big.bin", back, Duration.ofMinutes(2));
    long getMs = (System.nanoTime() - t0) / 1_000_000;
    assertArrayEquals(data, Files.readAllBytes(back));
    System.out.printf(
        "20 MB: put %d ms (%.1f MB/s), get %d ms (%.1f MB/s)%n",
        putMs, data.length / 1e3 / putMs, getMs, data.length / 1e3 / getMs);
    sh("rm -rf /tmp/in");
  }

  @Test
  void fileOverTheLimitIsRefusedAndNothingPartialIsLeft(@TempDir Path dir) throws Exception {
    Path src = dir.resolve("two-mb.bin");
    Files.write(src, new byte[2 * 1024 * 1024]);
    agent.maxFileBytes(1024 * 1024);
    try {
      AgentException e =
          assertThrows(
              AgentException.class,
              () -> agent.putFile(src, "/tmp/limit/x.bin", 0644, Duration.ofSeconds(30)));
      assertTrue(e.getMessage().contains("limit"), e.getMessage());
      Files.write(dir.resolve("small"), new byte[10]);
      sh("head -c 3000000 /dev/zero > /tmp/large.bin");
      AgentException g =
          assertThrows(
              AgentException.class,
              () -> agent.getFile("/tmp/large.bin", dir.resolve("large"), Duration.ofSeconds(30)));
      assertTrue(g.getMessage().contains("limit"), g.getMessage());
      assertFalse(Files.exists(dir.resolve("large")));
      try (var files = Files.list(dir)) {
        assertEquals(2, files.count(), "no partial download beside the target");
      }
    } finally {
      agent.maxFileBytes(AgentClient.DEFAULT_MAX_FILE_BYTES);
      sh("rm -f /tmp/large.bin");
    }
    assertEquals("", sh("ls /tmp/limit 2>/dev/null").stdoutText());
  }

  @Test
  void fullGuestDiskIsAClearErrorAndTheAgentKeepsServing(@TempDir Path dir) throws Exception {
    sh("mkdir -p /mnt/small && mount -t tmpfs -o size=1m tmpfs /mnt/small");
    try {
      Path src = dir.resolve("three-mb.bin");
      byte[] data = new byte[3 * 1024 * 1024];
      new Random(5).nextBytes(data);
      Files.write(src, data);
      AgentException e =
          assertThrows(
              AgentException.class,
              () -> agent.putFile(src, "/mnt/small/x.bin", 0644, Duration.ofSeconds(60)));
      assertTrue(e.getMessage().contains("No space left"), e.getMessage());
      assertEquals("", sh("ls -A /mnt/small").stdoutText(), "no partial file");
      assertEquals("still here\n", sh("echo still here").stdoutText());
    } finally {
      sh("umount /mnt/small");
    }
  }

  @Test
  void eightConcurrentExecsEachGetTheirOwnOutput() throws Exception {
    List<CompletableFuture<ExecResult>> running = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      running.add(
          agent
              .execAsync(
                  ExecRequest.script(
                      "for j in 1 2 3; do echo task-" + i + "-$j; sleep 0.$((RANDOM % 5)); done",
                      "sh"),
                  OutputListener.NONE)
              .result());
    }
    for (int i = 0; i < 8; i++) {
      ExecResult r = running.get(i).get();
      assertEquals("task-" + i + "-1\ntask-" + i + "-2\ntask-" + i + "-3\n", r.stdoutText());
    }
  }

  @Test
  void statusReportsTheGuest() throws Exception {
    StatusReport s = agent.status(Duration.ofSeconds(10));
    assertTrue(
        s.uptimeMillis() > 0 && s.memTotalKiB() > 300_000 && s.memAvailableKiB() > 0, s.toString());
    assertTrue(s.processCount() > 5, s.toString());
  }

  @Test
  void garbageOnTheChannelDoesNotKillTheAgentAndTheNextClientWorks() throws Exception {
    agent.close();
    Thread.sleep(200);
    try (SocketChannel raw = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      raw.connect(UnixDomainSocketAddress.of(template.agentSocket()));
      byte[] junk = new byte[64 * 1024];
      new Random(7).nextBytes(junk);
      raw.write(ByteBuffer.wrap(junk));
      raw.write(ByteBuffer.wrap("AVMP garbage after a magic".getBytes(StandardCharsets.US_ASCII)));
      Thread.sleep(500);
    }
    agent =
        AgentClient.connect(
            new UnixSocketTransport(template.agentSocket()), Duration.ofSeconds(30));
    assertEquals("alive\n", sh("echo alive").stdoutText());
  }
}
