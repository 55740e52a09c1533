package dev.agentvm.core;

import static dev.agentvm.core.RawAgentChannel.END;
import static dev.agentvm.core.RawAgentChannel.RESPONSE;
import static dev.agentvm.core.RawAgentChannel.frame;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RawAgentChannel.Fields;
import dev.agentvm.core.RawAgentChannel.RawFrame;
import dev.agentvm.core.RawAgentChannel.Reader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * docs/protocol.md against a real guest agent in a real VM: the document's worked examples are sent
 * as the bytes printed there, and its rules are tried with frames built by hand ({@link
 * RawAgentChannel}: its own CRC32 and layout, nothing of agent-vm-protocol). What the guest answers
 * is checked against the document, byte for byte where the document gives bytes.
 */
class ProtocolConformanceIT extends RealLibvirtTest {
  private static final Duration ANSWER = Duration.ofSeconds(30);
  private static final Duration QUIET = Duration.ofMillis(1500);

  // type values, from the document's messages table
  private static final int HELLO = 0x01;
  private static final int PING = 0x02;
  private static final int PONG = 0x03;
  private static final int ERROR = 0x04;
  private static final int EXEC = 0x10;
  private static final int STDOUT = 0x11;
  private static final int EXIT = 0x13;
  private static final int KILL = 0x14;
  private static final int STATUS = 0x15;
  private static final int PUT_FILE = 0x20;
  private static final int GET_FILE = 0x21;
  private static final int FILE_DATA = 0x22;

  static VMTemplate template;
  static VM vm;
  static Map<String, byte[]> doc;
  private static int nextId = 1000;

  @BeforeAll
  static void boot() throws Exception {
    doc = documentFrames();
    template =
        VMTemplate.builder(TestVms.name("conform"))
            .resources(new ResourceProfile(1, 512))
            .boot(TestVms.boot())
            .build();
    vm = conn.define(template);
    vm.start();
    vm.awaitAgent(Duration.ofSeconds(90)).close(); // up; from here on, raw connections only
  }

  @AfterAll
  static void shutdown() {
    if (vm != null) {
      vm.close();
      TestVms.assertNothingLeft(conn, template);
    }
  }

  @Override
  public void noTestDomainsLeft() {
    // the class's VM lives until @AfterAll; the base class checks for leftovers at the end
  }

  /** Every line of the document's {@code frames} blocks, by label. */
  static Map<String, byte[]> documentFrames() throws IOException {
    Path p = Path.of("..", "docs", "protocol.md");
    Map<String, byte[]> out = new LinkedHashMap<>();
    String label = null;
    StringBuilder hex = new StringBuilder();
    boolean in = false;
    for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
      if (!in) {
        in = line.strip().equals("```frames");
        continue;
      }
      boolean end = line.strip().equals("```");
      if (!end && !line.isBlank() && Character.isWhitespace(line.charAt(0))) {
        hex.append(line.strip().replace(" ", ""));
        continue;
      }
      if (label != null) {
        out.put(label, HexFormat.of().parseHex(hex.toString()));
        label = null;
        hex.setLength(0);
      }
      if (end) {
        in = false;
        continue;
      }
      String[] f = line.strip().split("\\s+", 3);
      label = f[1];
      hex.append(f[2].replace(" ", ""));
    }
    return out;
  }

  private static RawAgentChannel open() throws IOException {
    return RawAgentChannel.open(template.agentSocket(), Duration.ofSeconds(30));
  }

  private static synchronized int id() {
    return nextId++;
  }

  private static int errorCode(RawFrame f) {
    assertEquals(ERROR, f.type(), "expected ERROR, got " + f);
    assertEquals(RESPONSE, f.flags(), "an ERROR carries RESPONSE");
    Reader r = new Reader(f.payload());
    int code = r.u16();
    r.string();
    assertTrue(r.atEnd(), "ERROR payload: u16 code, string message");
    return code;
  }

  /** Sends a request and returns the first frame answering it. */
  private static RawFrame ask(RawAgentChannel ch, int type, byte[] payload) throws Exception {
    int id = id();
    ch.send(frame(type, 0, id, payload));
    return ch.nextFor(id, ANSWER);
  }

  // ---- the worked examples, as printed ----

  @Test
  void thePingExampleIsAnsweredWithTheDocumentsPongBytes() throws Exception {
    try (RawAgentChannel ch = open()) {
      ch.send(doc.get("ping.request"));
      assertArrayEquals(doc.get("ping.answer"), ch.nextFor(2, ANSWER).bytes());
    }
  }

  @Test
  void theExecExampleGivesTheDocumentsStdoutThenAnExit() throws Exception {
    try (RawAgentChannel ch = open()) {
      ch.send(doc.get("exec.request"));
      assertArrayEquals(doc.get("exec.stdout"), ch.nextFor(3, ANSWER).bytes());
      RawFrame exit = ch.nextFor(3, ANSWER);
      byte[] documented = doc.get("exec.exit");
      // all but the duration (and so the CRCs) as in the document
      assertArrayEquals(Arrays.copyOf(documented, 16), Arrays.copyOf(exit.bytes(), 16));
      assertArrayEquals(Arrays.copyOfRange(documented, 20, 28), Arrays.copyOf(exit.payload(), 8));
      assertEquals(0, exit.payload()[16], "EXIT flags");
    }
  }

  @Test
  void thePutFileExampleInTwoChunksGivesTheDocumentsAnswers() throws Exception {
    try (RawAgentChannel ch = open()) {
      ch.send(doc.get("put.request"));
      assertArrayEquals(doc.get("put.ready"), ch.nextFor(4, ANSWER).bytes(), "ready");
      ch.send(doc.get("put.data1"), doc.get("put.data2"));
      assertArrayEquals(doc.get("put.end"), ch.nextFor(4, ANSWER).bytes(), "end");

      // and the guest holds it: GET_FILE, built by hand
      int id = id();
      ch.send(frame(GET_FILE, 0, id, new Fields().string("/tmp/hello.txt").i64(1000).toBytes()));
      RawFrame data = ch.nextFor(id, ANSWER);
      assertEquals(FILE_DATA, data.type());
      assertEquals(RESPONSE | END, data.flags(), "a file in one chunk: RESPONSE | END");
      assertEquals("hello world", new String(data.payload(), StandardCharsets.US_ASCII));
      RawFrame header = ch.nextFor(id, ANSWER);
      assertEquals(GET_FILE, header.type());
      assertEquals(RESPONSE, header.flags());
      Reader r = new Reader(header.payload());
      assertEquals("/tmp/hello.txt", r.string());
      assertEquals(0644, r.i32());
      assertEquals(11, r.i64());
      assertEquals(
          "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
          r.string(),
          "lowercase hex");
      assertTrue(r.atEnd());
    }
  }

  // ---- the rules, with frames built by hand ----

  @Test
  void noHandshakeStateRequestsBeforeHelloAndEveryHelloAreAnswered() throws Exception {
    try (RawAgentChannel ch = open()) {
      RawFrame pong = ask(ch, PING, new byte[] {1, 2, 3});
      assertEquals(PONG, pong.type());
      assertEquals(RESPONSE, pong.flags());
      assertArrayEquals(new byte[] {1, 2, 3}, pong.payload());
      long agentStart = -2;
      for (int i = 0; i < 2; i++) {
        RawFrame hello = ask(ch, HELLO, RawAgentChannel.helloPayload("conformance"));
        assertEquals(HELLO, hello.type());
        assertEquals(RESPONSE, hello.flags());
        Reader r = new Reader(hello.payload());
        assertEquals(1, r.u16(), "version");
        assertFalse(r.string().isEmpty(), "agent version");
        List<String> caps = new ArrayList<>();
        for (int n = r.u16(); n > 0; n--) {
          caps.add(r.string());
        }
        assertTrue(caps.containsAll(List.of("ping", "exec", "put-file", "get-file")), "" + caps);
        r.string(); // kernel release
        r.i64();
        long start = r.i64();
        r.i64();
        assertTrue(r.atEnd(), "HelloResponse has no trailing bytes");
        assertTrue(agentStart == -2 || agentStart == start, "the same agent answers both");
        agentStart = start;
      }
      RawFrame v = ask(ch, HELLO, new Fields().u16(7).u16(9).string("future").toBytes());
      assertEquals(3, errorCode(v), "UNSUPPORTED_VERSION");
    }
  }

  @Test
  void garbageCostsOneFramingErrorWithIdZeroAndTheNextFrameIsServed() throws Exception {
    try (RawAgentChannel ch = open()) {
      byte[] garbage = new byte[100]; // zeros: no magic anywhere
      int id = id();
      ch.send(garbage, "AVM".getBytes(StandardCharsets.US_ASCII), frame(PING, 0, id, new byte[0]));
      RawFrame err = ch.next(ANSWER);
      assertEquals(0, err.id(), "framing errors carry id 0");
      assertEquals(1, errorCode(err), "BAD_MAGIC");
      RawFrame pong = ch.next(ANSWER);
      assertEquals(PONG, pong.type(), "one ERROR for the whole run, then the frame: " + pong);
      assertEquals(id, pong.id());

      // a frame CRC mismatch: BAD_CHECKSUM, the frame skipped whole
      byte[] bad = frame(PING, 0, id(), new byte[] {9});
      bad[bad.length - 1] ^= 1;
      int after = id();
      ch.send(bad, frame(PING, 0, after, new byte[0]));
      RawFrame crc = ch.next(ANSWER);
      assertEquals(0, crc.id());
      assertEquals(2, errorCode(crc), "BAD_CHECKSUM");
      assertEquals(after, ch.next(ANSWER).id());

      // frame version 2, then a length above 1 MiB: rejected headers, each one ERROR
      byte[] v2 = frame(PING, 0, id(), new byte[0]);
      v2[4] = 2;
      RawAgentChannel.putInt(v2, 16, RawAgentChannel.crc32(v2, 0, 16));
      ch.send(v2);
      RawFrame version = ch.next(ANSWER);
      assertEquals(0, version.id());
      assertEquals(3, errorCode(version), "UNSUPPORTED_VERSION");
      byte[] big = RawAgentChannel.frameWithLength(PING, 0, id(), new byte[0], (1 << 20) + 1);
      int last = id();
      ch.send(Arrays.copyOf(big, 20), frame(PING, 0, last, new byte[0]));
      RawFrame tooLarge = ch.next(ANSWER);
      assertEquals(0, tooLarge.id());
      assertEquals(4, errorCode(tooLarge), "FRAME_TOO_LARGE");
      assertEquals(last, ch.next(ANSWER).id());
      assertEquals(0, ch.skippedBytes(), "the guest sent only whole, valid frames");
    }
  }

  @Test
  void typesFlagsAndAnswersFromTheHost() throws Exception {
    try (RawAgentChannel ch = open()) {
      RawFrame unknown = ask(ch, 0x7f, new byte[0]);
      assertEquals(5, errorCode(unknown), "UNKNOWN_TYPE");
      RawFrame pongFromHost = ask(ch, PONG, new byte[0]);
      assertEquals(8, errorCode(pongFromHost), "UNSUPPORTED_OPERATION");

      // undefined flag bits (and END where it means nothing) are ignored
      int id = id();
      ch.send(frame(PING, 0x8000 | END, id, new byte[] {5}));
      RawFrame pong = ch.next(ANSWER);
      assertEquals(id, pong.id());
      assertEquals(RESPONSE, pong.flags());

      // frames with RESPONSE are not answered at all, not even an ERROR
      ch.send(frame(ERROR, RESPONSE, id(), new Fields().u16(9).string("x").toBytes()));
      ch.send(frame(PING, RESPONSE, id(), new byte[0]));
      int after = id();
      ch.send(frame(PING, 0, after, new byte[0]));
      assertEquals(after, ch.next(ANSWER).id(), "the answers from the host got no answer");
    }
  }

  @Test
  void payloadsAreConsumedExactlyAndStringsMustBeUtf8() throws Exception {
    try (RawAgentChannel ch = open()) {
      assertEquals(6, errorCode(ask(ch, STATUS, new byte[] {0})), "trailing byte");
      RawFrame status = ask(ch, STATUS, new byte[0]);
      assertEquals(STATUS, status.type());
      assertEquals(40, status.payload().length, "StatusReport: 4 x i64 + 2 x i32");
      byte[] badUtf8 = new Fields().u16(1).u16(1).bytes(new byte[] {(byte) 0xC3, 0x28}).toBytes();
      assertEquals(6, errorCode(ask(ch, HELLO, badUtf8)), "invalid UTF-8");
      byte[] execTail = new Fields().raw(RawAgentChannel.execPayload(100, "true")).u8(0).toBytes();
      assertEquals(6, errorCode(ask(ch, EXEC, execTail)));
    }
  }

  @Test
  void execSemantics() throws Exception {
    try (RawAgentChannel ch = open()) {
      // env is added to the agent's; an empty cwd is /tmp
      byte[] p =
          new Fields()
              .u16(3)
              .string("sh")
              .string("-c")
              .string("echo \"$FOO:$LANG:$(pwd)\"")
              .string("")
              .u16(1)
              .string("FOO")
              .string("bär")
              .string("")
              .bytes(new byte[0])
              .i64(30_000)
              .i64(1000)
              .i64(500)
              .toBytes();
      assertEquals("bär:C.UTF-8:/tmp\n", output(ch, EXEC, p, 0));

      // a script goes to /tmp/agentvm-script-*, its path appended; removed after EXIT
      byte[] script =
          new Fields()
              .u16(1)
              .string("sh")
              .string("echo \"$0\"")
              .u16(0)
              .string("")
              .bytes(new byte[0])
              .i64(30_000)
              .i64(1000)
              .i64(500)
              .toBytes();
      String path = output(ch, EXEC, script, 0).strip();
      assertTrue(path.startsWith("/tmp/agentvm-script-"), path);
      String gone = "";
      for (int i = 0; i < 10 && !gone.equals("gone\n"); i++) { // removed just after EXIT is sent
        gone =
            output(
                ch,
                EXEC,
                RawAgentChannel.execPayload(100, "sh", "-c", "test -e " + path + " || echo gone"),
                0);
      }
      assertEquals("gone\n", gone, path + " was not removed");

      // output limit 0: no STDOUT frames, EXIT flag 4
      int id = id();
      ch.send(frame(EXEC, 0, id, RawAgentChannel.execPayload(0, "echo", "dropped")));
      RawFrame exit = ch.nextFor(id, ANSWER);
      assertEquals(EXIT, exit.type(), "no output frames with limit 0: " + exit);
      assertEquals(4, exit.payload()[16], "stdout truncated");

      // a missing command: COMMAND_NOT_FOUND before anything starts; NUL in an argument
      assertEquals(16, errorCode(ask(ch, EXEC, RawAgentChannel.execPayload(100, "no-such-cmd"))));
      assertEquals(6, errorCode(ask(ch, EXEC, RawAgentChannel.execPayload(100, "echo", "a\0b"))));
    }
  }

  @Test
  void killStopsTheCommandWithSignalFieldsAndAnUnknownIdIsNotFound() throws Exception {
    try (RawAgentChannel ch = open()) {
      int exec = id();
      ch.send(frame(EXEC, 0, exec, RawAgentChannel.execPayload(100, "sleep", "60")));
      Thread.sleep(1000);
      // a duplicate id while it runs is refused
      ch.send(frame(EXEC, 0, exec, RawAgentChannel.execPayload(100, "true")));
      assertEquals(6, errorCode(ch.nextFor(exec, ANSWER)), "id in use");
      int kill = id();
      ch.send(frame(KILL, 0, kill, new Fields().i32(exec).toBytes()));
      List<RawFrame> got = new ArrayList<>();
      got.add(ch.next(ANSWER));
      got.add(ch.next(ANSWER));
      RawFrame killAnswer = got.stream().filter(f -> f.id() == kill).findFirst().orElseThrow();
      assertEquals(KILL, killAnswer.type());
      assertEquals(RESPONSE, killAnswer.flags());
      assertEquals(0, killAnswer.payload().length);
      RawFrame exit = got.stream().filter(f -> f.id() == exec).findFirst().orElseThrow();
      assertEquals(EXIT, exit.type());
      Reader r = new Reader(exit.payload());
      int code = r.i32();
      int signal = r.i32();
      r.i64();
      int flags = r.u8();
      assertTrue(signal == 15 || signal == 9, "signal " + signal);
      assertEquals(128 + signal, code);
      assertEquals(2, flags, "killed");

      Thread.sleep(300); // the agent forgets the id just after it sent EXIT
      assertEquals(10, errorCode(ask(ch, KILL, new Fields().i32(exec).toBytes())), "NOT_FOUND");
    }
  }

  @Test
  void anEmptyFileIsOneEmptyEndChunkBothWays() throws Exception {
    try (RawAgentChannel ch = open()) {
      String empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
      int id = id();
      ch.send(
          frame(
              PUT_FILE,
              0,
              id,
              new Fields().string("/tmp/conform-empty").i32(0600).i64(0).string(empty).toBytes()));
      RawFrame ready = ch.nextFor(id, ANSWER);
      assertEquals(PUT_FILE, ready.type(), "ready: " + ready);
      assertEquals(RESPONSE, ready.flags());
      ch.send(frame(FILE_DATA, END, id, new byte[0]));
      RawFrame end = ch.nextFor(id, ANSWER);
      assertEquals(PUT_FILE, end.type(), "end: " + end);
      assertEquals(RESPONSE | END, end.flags());

      int get = id();
      ch.send(frame(GET_FILE, 0, get, new Fields().string("/tmp/conform-empty").i64(0).toBytes()));
      RawFrame data = ch.nextFor(get, ANSWER);
      assertEquals(FILE_DATA, data.type());
      assertEquals(RESPONSE | END, data.flags());
      assertEquals(0, data.payload().length);
      Reader r = new Reader(ch.nextFor(get, ANSWER).payload());
      r.string();
      assertEquals(0600, r.i32());
      assertEquals(0, r.i64());
      assertEquals(empty, r.string());

      // more data than announced: ERROR at once, and the target is not created
      int over = id();
      ch.send(
          frame(
              PUT_FILE,
              0,
              over,
              new Fields().string("/tmp/conform-over").i32(0644).i64(1).string(empty).toBytes()));
      assertEquals(PUT_FILE, ch.nextFor(over, ANSWER).type());
      ch.send(frame(FILE_DATA, 0, over, new byte[] {1, 2}));
      assertEquals(6, errorCode(ch.nextFor(over, ANSWER)), "MALFORMED_PAYLOAD");
      ch.send(frame(FILE_DATA, END, over, new byte[0])); // the tail: dropped without an answer
      int check = id();
      ch.send(frame(GET_FILE, 0, check, new Fields().string("/tmp/conform-over").i64(9).toBytes()));
      assertEquals(10, errorCode(ch.nextFor(check, ANSWER)), "NOT_FOUND");
      assertNull(ch.poll(QUIET), "nothing else");
    }
  }

  /** Runs an EXEC and returns its standard output; asserts the exit code. */
  private static String output(RawAgentChannel ch, int type, byte[] payload, int exitCode)
      throws Exception {
    int id = id();
    ch.send(frame(type, 0, id, payload));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    while (true) {
      RawFrame f = ch.nextFor(id, ANSWER);
      assertEquals(RESPONSE, f.flags(), "" + f);
      if (f.type() == STDOUT) {
        out.write(f.payload());
        continue;
      }
      assertEquals(EXIT, f.type(), "" + f);
      assertEquals(exitCode, new Reader(f.payload()).i32(), out.toString(StandardCharsets.UTF_8));
      return out.toString(StandardCharsets.UTF_8);
    }
  }
}
