package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.PayloadWriter;
import dev.agentvm.protocol.StatusReport;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent's ordinary exchanges (PING, STATUS, EXEC with its output, limits, timeout and KILL,
 * PUT_FILE and GET_FILE with their checks) through its request loop over in-memory pipes, on this
 * host's file system and processes. The real-VM proof of the same exchanges is AgentClientIT and
 * SandboxIT; these tests pin the agent's side of each answer.
 */
class GuestExchangesTest {
  @TempDir Path dir;
  private PipedAgent agent;

  @BeforeEach
  void start() throws IOException {
    agent = new PipedAgent();
  }

  @AfterEach
  void stop() {
    agent.close();
  }

  /** An EXEC's whole answer: what came on stdout and stderr, and the EXIT. */
  private record Run(String stdout, String stderr, ExitStatus exit) {}

  private Run run(int id) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    while (true) {
      Frame f = agent.replies.read();
      assertEquals(id, f.requestId(), "answer to another request: " + f);
      if (f.type() == MessageType.STDOUT.wire()) {
        out.writeBytes(f.payload());
      } else if (f.type() == MessageType.STDERR.wire()) {
        err.writeBytes(f.payload());
      } else {
        assertEquals(MessageType.EXIT.wire(), f.type(), "expected EXIT, got " + describe(f));
        return new Run(
            out.toString(StandardCharsets.UTF_8),
            err.toString(StandardCharsets.UTF_8),
            ExitStatus.decode(f.payload()));
      }
    }
  }

  private static String describe(Frame f) {
    try {
      return f.type() == MessageType.ERROR.wire()
          ? ErrorPayload.decode(f.payload()).toString()
          : f.toString();
    } catch (IOException e) {
      return f.toString();
    }
  }

  private static ErrorCode code(Frame f) throws IOException {
    assertEquals(MessageType.ERROR.wire(), f.type(), "expected an ERROR, got " + f);
    return ErrorPayload.decode(f.payload()).code();
  }

  private static ExecSpec spec(
      List<String> argv, String script, byte[] stdin, long timeoutMillis, long outputLimit) {
    return new ExecSpec(
        argv, script, Map.of("GREETING", "hi there"), "", stdin, timeoutMillis, outputLimit, 200);
  }

  private static String sha256(byte[] data) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
  }

  @Test
  void pingEchoesAndStatusReportsThisMachine() throws Exception {
    byte[] nonce = {1, 2, 3, 4};
    Frame pong = agent.ask(MessageType.PING, nonce);
    assertEquals(MessageType.PONG.wire(), pong.type());
    assertArrayEquals(nonce, pong.payload());

    StatusReport s = StatusReport.decode(agent.ask(MessageType.STATUS, new byte[0]).payload());
    assertTrue(s.memTotalKiB() > 0 && s.memAvailableKiB() > 0, s.toString());
    assertTrue(s.processCount() > 0 && s.uptimeMillis() > 0 && s.load1() >= 0, s.toString());
    assertEquals(0, s.runningExecs());
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, code(agent.ask(MessageType.STATUS, new byte[] {1})));
    // an answer type sent as a request is not a request the agent takes
    assertEquals(ErrorCode.UNSUPPORTED_OPERATION, code(agent.ask(MessageType.EXIT, new byte[0])));
  }

  @Test
  void execStreamsOutputFeedsInputAndReportsTheExit() throws Exception {
    String script = "cat; echo \"$GREETING\" in \"$(pwd)\"; echo oops >&2; exit 3";
    int id =
        agent.send(
            MessageType.EXEC,
            spec(
                    List.of("sh"),
                    script,
                    "from stdin\n".getBytes(StandardCharsets.UTF_8),
                    30_000,
                    1 << 20)
                .encode());
    Run r = run(id);
    assertEquals("from stdin\nhi there in /tmp\n", r.stdout());
    assertEquals("oops\n", r.stderr());
    assertEquals(3, r.exit().exitCode());
    assertFalse(r.exit().timedOut() || r.exit().killed() || r.exit().stdoutTruncated());
    try (Stream<Path> left = Files.list(Path.of("/tmp"))) {
      assertTrue(
          left.noneMatch(p -> p.getFileName().toString().startsWith("agentvm-script-") && isOld(p)),
          "the script file outlived its command");
    }
  }

  private static boolean isOld(Path p) {
    try {
      return Files.getLastModifiedTime(p).toMillis() < System.currentTimeMillis() - 60_000;
    } catch (IOException e) {
      return false; // removed meanwhile
    }
  }

  @Test
  void outputBeyondTheLimitIsCountedNotSentAndTheCommandIsNotBlocked() throws Exception {
    int id =
        agent.send(
            MessageType.EXEC,
            spec(
                    List.of("sh", "-c", "head -c 300000 /dev/zero; head -c 10 /dev/zero >&2"),
                    "",
                    new byte[0],
                    30_000,
                    1000)
                .encode());
    Run r = run(id);
    assertEquals(1000, r.stdout().length());
    assertEquals(10, r.stderr().length());
    assertTrue(r.exit().stdoutTruncated());
    assertFalse(r.exit().stderrTruncated());
    assertEquals(0, r.exit().exitCode());
  }

  @Test
  void aTimeoutEndsTheWholeGroupAndAKillEndsARunningCommand() throws Exception {
    Path marker = dir.resolve("child-alive");
    // a child in the command's group that would touch the marker after the timeout
    String script = "(sleep 3; touch " + marker + ") & sleep 30";
    long t0 = System.nanoTime();
    Run timedOut =
        run(
            agent.send(
                MessageType.EXEC, spec(List.of("sh"), script, new byte[0], 300, 1 << 20).encode()));
    assertTrue(timedOut.exit().timedOut(), timedOut.toString());
    assertFalse(timedOut.exit().killed());
    assertTrue(System.nanoTime() - t0 < 10_000_000_000L, "the timeout did not end the command");

    int id =
        agent.send(
            MessageType.EXEC, spec(List.of("sleep", "30"), "", new byte[0], 0, 1 << 20).encode());
    // the same request id twice while it runs: refused, the first one unharmed
    agent.host.write(
        Frame.request(
            MessageType.EXEC, id, spec(List.of("true"), "", new byte[0], 0, 10).encode()));
    Frame dup = agent.replies.read();
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, code(dup));
    // a KILL before setsid made the process group finds no group to TERM (only the KILL after
    // the grace lands): give sleep a moment to start, a loaded host can be slow to fork
    Thread.sleep(500);
    Frame ack = agent.ask(MessageType.KILL, new PayloadWriter().i32(id).toByteArray());
    assertEquals(MessageType.KILL.wire(), ack.type(), describe(ack));
    Run killed = run(id);
    assertTrue(killed.exit().killed(), killed.toString());
    assertFalse(killed.exit().timedOut());
    assertEquals(15, killed.exit().signal(), "TERM ends sleep: " + killed);

    Thread.sleep(3500);
    assertFalse(Files.exists(marker), "a child of the timed-out command survived it");
  }

  @Test
  void aCommandThatIgnoresTermIsKilledAfterTheGracePeriod() throws Exception {
    long t0 = System.nanoTime();
    Run r =
        run(
            agent.send(
                MessageType.EXEC,
                spec(
                        List.of("sh"),
                        "trap '' TERM; echo ready; sleep 30",
                        new byte[0],
                        1500,
                        1 << 20)
                    .encode()));
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertEquals("ready\n", r.stdout(), "the trap was set before the deadline: " + r);
    assertTrue(r.exit().timedOut(), r.toString());
    assertEquals(9, r.exit().signal(), "KILL, after TERM was ignored: " + r);
    assertTrue(ms >= 1500 + 200, "KILL came before the grace period was over: " + ms + " ms");
    assertTrue(ms < 10_000, "KILL came late: " + ms + " ms");
  }

  @Test
  void outputHeldByAChildOutsideTheGroupIsCutOffAfterTheExit() throws Exception {
    // the child leaves the command's session with the pipes: no kill reaches it, no EOF comes
    long t0 = System.nanoTime();
    Run r =
        run(
            agent.send(
                MessageType.EXEC,
                new ExecSpec(
                        List.of("sh", "-c", "setsid sleep 6 & echo done"),
                        "",
                        Map.of(),
                        "",
                        new byte[0],
                        30_000,
                        1 << 20,
                        200)
                    .encode()));
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertEquals("done\n", r.stdout(), r.toString());
    assertEquals(0, r.exit().exitCode());
    assertTrue(ms >= 1900 && ms < 5000, "EXIT about 2 s after the exit, not at EOF: " + ms + " ms");
  }

  @Test
  void aCommandWhoseOutputNobodyReadsIsStillStoppedWhenTheHostGoesAway() throws Exception {
    Run r = floodUnread(0, () -> agent.agent.stopAll("host disconnected"));
    assertTrue(r.exit().killed(), r.exit().toString());
  }

  @Test
  void aCommandWhoseOutputNobodyReadsIsStillStoppedAtItsDeadline() throws Exception {
    Run r = floodUnread(3000, () -> {});
    assertTrue(r.exit().timedOut(), r.exit().toString());
  }

  /**
   * Runs a command that writes without end while the host reads nothing (the agent's writes wait),
   * does {@code then}, waits until the command has stopped, then reads its whole answer.
   */
  private Run floodUnread(long timeoutMillis, Runnable then) throws Exception {
    Path pidFile = dir.resolve("pid");
    int id =
        agent.send(
            MessageType.EXEC,
            spec(
                    List.of("sh"),
                    "echo $$ > " + pidFile + "; exec yes",
                    new byte[0],
                    timeoutMillis,
                    1L << 30)
                .encode());
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (!Files.exists(pidFile) || Files.readString(pidFile).isBlank()) {
      assertTrue(System.nanoTime() < deadline, "the command did not start");
      Thread.sleep(20);
    }
    Path stat = Path.of("/proc", Files.readString(pidFile).strip(), "stat");
    Thread.sleep(1000); // the agent's writes now wait: the host reads nothing
    then.run();
    // stopped though the agent is stuck writing its output: gone, or ended and not yet reaped
    while (Files.exists(stat) && !state(stat).equals("Z")) {
      assertTrue(System.nanoTime() < deadline + 10_000_000_000L, "still running: " + state(stat));
      Thread.sleep(20);
    }
    return run(id); // reading lets the agent finish
  }

  /** The state letter in {@code /proc/PID/stat}, "" when the process is gone. */
  private static String state(Path stat) {
    try {
      String s = Files.readString(stat);
      return s.substring(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
    } catch (IOException e) {
      return "";
    }
  }

  @Test
  void stopAllEndsRunningCommandsWhenTheHostGoesAway() throws Exception {
    int id =
        agent.send(
            MessageType.EXEC, spec(List.of("sleep", "30"), "", new byte[0], 0, 1 << 20).encode());
    StatusReport s;
    do {
      s = StatusReport.decode(agent.ask(MessageType.STATUS, new byte[0]).payload());
    } while (s.runningExecs() == 0);
    agent.agent.stopAll("host disconnected");
    Run r = run(id);
    assertTrue(r.exit().killed(), r.toString());
  }

  private Frame put(String path, byte[] data, String sha, int mode, int chunk) throws Exception {
    int id =
        agent.send(MessageType.PUT_FILE, new FileHeader(path, mode, data.length, sha).encode());
    Frame ready = agent.replies.read();
    if (ready.type() == MessageType.ERROR.wire()) {
      return ready;
    }
    assertEquals(MessageType.PUT_FILE.wire(), ready.type());
    assertEquals(0, ready.flags() & Frame.FLAG_END, "ready for data, not done");
    for (int off = 0; off == 0 || off < data.length; off += chunk) {
      int end = Math.min(data.length, off + chunk);
      agent.host.write(
          new Frame(
              MessageType.FILE_DATA.wire(),
              end == data.length ? Frame.FLAG_END : 0,
              id,
              Arrays.copyOfRange(data, off, end)));
    }
    return agent.answerTo(id);
  }

  @Test
  void putFileThenGetFileRoundTripsContentModeAndHash() throws Exception {
    byte[] data = new byte[700_000]; // three FILE_DATA chunks each way
    new Random(7).nextBytes(data);
    Path target = dir.resolve("sub/dir/data.bin");
    Frame done = put(target.toString(), data, sha256(data), 0750, 200_000);
    assertEquals(MessageType.PUT_FILE.wire(), done.type(), describe(done));
    assertTrue((done.flags() & Frame.FLAG_END) != 0);
    assertArrayEquals(data, Files.readAllBytes(target));
    assertEquals("rwxr-x---", PosixFilePermissions.toString(Files.getPosixFilePermissions(target)));

    int id =
        agent.send(
            MessageType.GET_FILE,
            new PayloadWriter().string(target.toString()).i64(1 << 20).toByteArray());
    ByteArrayOutputStream got = new ByteArrayOutputStream();
    Frame f = agent.replies.read();
    while (f.type() == MessageType.FILE_DATA.wire()) {
      assertEquals(id, f.requestId());
      got.writeBytes(f.payload());
      f = agent.replies.read();
    }
    assertEquals(MessageType.GET_FILE.wire(), f.type(), describe(f));
    FileHeader h = FileHeader.decode(f.payload());
    assertArrayEquals(data, got.toByteArray());
    assertEquals(new FileHeader(target.toString(), 0750, data.length, sha256(data)), h);

    // an empty file is one empty END chunk
    Path empty = dir.resolve("empty");
    assertEquals(
        MessageType.PUT_FILE.wire(),
        put(empty.toString(), new byte[0], sha256(new byte[0]), 0644, 10).type());
    assertEquals(0, Files.size(empty));

    // too big for the caller's limit: refused before a byte is sent
    Frame big =
        agent.ask(
            MessageType.GET_FILE,
            new PayloadWriter().string(target.toString()).i64(1000).toByteArray());
    assertEquals(ErrorCode.FRAME_TOO_LARGE, code(big));
  }

  @Test
  void aPutWhoseBytesDoNotMatchItsHeaderLeavesNothing() throws Exception {
    byte[] data = "the real content".getBytes(StandardCharsets.UTF_8);
    Path target = dir.resolve("f.txt");
    Files.writeString(target, "old");

    assertEquals(
        ErrorCode.MALFORMED_PAYLOAD,
        code(put(target.toString(), data, sha256(new byte[] {1}), 0644, 5)));
    // more bytes than announced
    int id =
        agent.send(
            MessageType.PUT_FILE,
            new FileHeader(target.toString(), 0644, 4, sha256(data)).encode());
    assertEquals(MessageType.PUT_FILE.wire(), agent.replies.read().type());
    agent.host.write(new Frame(MessageType.FILE_DATA.wire(), Frame.FLAG_END, id, data));
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, code(agent.answerTo(id)));
    // the tail of a transfer that already ended is dropped silently; one never opened is an error
    agent.host.write(new Frame(MessageType.FILE_DATA.wire(), Frame.FLAG_END, id, data));
    assertEquals(
        ErrorCode.MALFORMED_PAYLOAD, code(agent.answerTo(agent.send(MessageType.FILE_DATA, data))));

    assertEquals("old", Files.readString(target), "a failed put must not touch the target");
    try (Stream<Path> files = Files.list(dir)) {
      assertEquals(List.of(target), files.toList(), "a failed put left a partial file");
    }
    // larger than the agent takes at all
    Frame huge =
        agent.ask(
            MessageType.PUT_FILE,
            new FileHeader(target.toString(), 0644, Long.MAX_VALUE / 2, sha256(data)).encode());
    assertEquals(ErrorCode.FRAME_TOO_LARGE, code(huge));
  }

  @Test
  void aPutAbortedByTheHostGoingAwayLeavesNothing() throws Exception {
    Path target = dir.resolve("g.bin");
    int id =
        agent.send(
            MessageType.PUT_FILE,
            new FileHeader(target.toString(), 0644, 10, sha256(new byte[10])).encode());
    assertEquals(MessageType.PUT_FILE.wire(), agent.replies.read().type());
    agent.host.write(new Frame(MessageType.FILE_DATA.wire(), 0, id, new byte[3]));
    agent.agent.stopAll("host disconnected");
    Frame f = agent.answerTo(id);
    assertEquals(ErrorCode.INTERNAL, code(f));
    assertTrue(ErrorPayload.decode(f.payload()).message().contains("aborted"));
    try (Stream<Path> files = Files.list(dir)) {
      assertEquals(List.of(), files.toList(), "an aborted put left a partial file");
    }
  }

  @Test
  void helpersParseWhatTheKernelWrites() throws Exception {
    assertEquals(1230, GuestAgent.parseSecondsToMillis(" 1.23 "));
    assertEquals(-1, GuestAgent.parseSecondsToMillis("x"));
    assertEquals(-1, GuestAgent.parseSecondsToMillis(null));
    assertEquals("0.52", Status.firstField("0.52 0.40 0.33 1/123 456"));
    assertEquals("7", Status.firstField("7"));
    assertTrue(GuestAgent.uptimeMillis() > 0);
    IOException e =
        assertThrows(IOException.class, () -> GuestAgent.findPort("agentvm-no-such-port", 100));
    assertTrue(e.getMessage().contains("agentvm-no-such-port"), e.getMessage());
  }
}
