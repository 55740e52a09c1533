package dev.agentvm.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The worked examples in docs/protocol.md decode with this codec, byte for byte, and mean what the
 * document says they mean: document and code cannot drift apart unnoticed.
 */
class ProtocolDocExamplesTest {
  /** One frame line of a {@code frames} block: who sends it, its label, its bytes. */
  @SuppressWarnings("ArrayRecordComponent") // test data, never compared or hashed
  record Example(String sender, String label, byte[] bytes) {}

  static Path document() {
    // surefire runs in the module's directory; the document is the reactor's
    Path p = Path.of("..", "docs", "protocol.md");
    assertTrue(Files.isRegularFile(p), "no " + p.toAbsolutePath());
    return p;
  }

  /**
   * Parses every {@code frames} block: a line "{@code sender label hex...}", continued by indented
   * lines of more hex.
   */
  static Map<String, Example> examples() throws IOException {
    Map<String, Example> out = new LinkedHashMap<>();
    boolean in = false;
    String sender = null;
    String label = null;
    StringBuilder hex = new StringBuilder();
    List<String> lines = new ArrayList<>(Files.readAllLines(document(), StandardCharsets.UTF_8));
    for (String line : lines) {
      if (!in) {
        in = line.strip().equals("```frames");
        continue;
      }
      boolean endOfBlock = line.strip().equals("```");
      boolean continuation =
          !endOfBlock && !line.isBlank() && Character.isWhitespace(line.charAt(0));
      if (continuation) {
        hex.append(line.strip().replace(" ", ""));
        continue;
      }
      if (label != null) {
        assertFalse(out.containsKey(label), "label used twice: " + label);
        out.put(label, new Example(sender, label, HexFormat.of().parseHex(hex.toString())));
        label = null;
        hex.setLength(0);
      }
      if (endOfBlock) {
        in = false;
        continue;
      }
      String[] f = line.strip().split("\\s+", 3);
      assertEquals(3, f.length, "frame line: " + line);
      sender = f[0];
      label = f[1];
      hex.append(f[2].replace(" ", ""));
    }
    assertFalse(in, "unterminated frames block");
    return out;
  }

  static Frame decodeWhole(Example e) throws IOException {
    FrameReader r = new FrameReader(new ByteArrayInputStream(e.bytes()));
    Frame f = r.read();
    assertNull(r.read(), e.label() + ": bytes after the frame");
    assertArrayEquals(e.bytes(), FrameCodec.encode(f), e.label() + ": re-encodes differently");
    return f;
  }

  @Test
  void everyExampleIsOneWholeFrameWithTheFlagsOfItsSender() throws Exception {
    Map<String, Example> ex = examples();
    assertTrue(
        ex.keySet()
            .containsAll(
                List.of(
                    "hello.request",
                    "ping.request",
                    "ping.answer",
                    "exec.request",
                    "exec.stdout",
                    "exec.exit",
                    "put.request",
                    "put.ready",
                    "put.data1",
                    "put.data2",
                    "put.end",
                    "error.framing")),
        "examples in the document: " + ex.keySet());
    for (Example e : ex.values()) {
      Frame f = decodeWhole(e);
      assertTrue(f.messageType().isPresent(), e.label() + ": unknown type");
      assertEquals(0, f.flags() & ~(Frame.FLAG_RESPONSE | Frame.FLAG_END), e.label());
      switch (e.sender()) {
        case "host" -> assertFalse(f.isResponse(), e.label() + ": the host sends no answers");
        case "guest" -> assertTrue(f.isResponse(), e.label() + ": the guest sends only answers");
        default -> throw new AssertionError(e.label() + ": sender " + e.sender());
      }
    }
  }

  @Test
  void theExamplesMeanWhatTheDocumentSays() throws Exception {
    Map<String, Example> ex = examples();
    Frame hello = decodeWhole(ex.get("hello.request"));
    assertEquals(MessageType.HELLO.wire(), hello.type());
    assertEquals(new HelloRequest(1, 1, "peer"), HelloRequest.decode(hello.payload()));

    Frame ping = decodeWhole(ex.get("ping.request"));
    Frame pong = decodeWhole(ex.get("ping.answer"));
    assertEquals(MessageType.PING.wire(), ping.type());
    assertEquals(MessageType.PONG.wire(), pong.type(), "a PING is answered by PONG (0x03)");
    assertEquals(ping.requestId(), pong.requestId());
    assertArrayEquals("hi".getBytes(StandardCharsets.US_ASCII), ping.payload());
    assertArrayEquals(ping.payload(), pong.payload());

    Frame exec = decodeWhole(ex.get("exec.request"));
    assertEquals(MessageType.EXEC.wire(), exec.type());
    ExecSpec spec = ExecSpec.decode(exec.payload());
    assertEquals(
        new ExecSpec(List.of("echo", "hi"), "", Map.of(), "", new byte[0], 10_000, 65_536, 2_000),
        spec);
    Frame out = decodeWhole(ex.get("exec.stdout"));
    assertEquals(MessageType.STDOUT.wire(), out.type());
    assertEquals(exec.requestId(), out.requestId());
    assertArrayEquals("hi\n".getBytes(StandardCharsets.US_ASCII), out.payload());
    Frame exit = decodeWhole(ex.get("exec.exit"));
    assertEquals(MessageType.EXIT.wire(), exit.type());
    assertEquals(exec.requestId(), exit.requestId());
    assertEquals(
        new ExitStatus(0, 0, 25, false, false, false, false), ExitStatus.decode(exit.payload()));

    Frame put = decodeWhole(ex.get("put.request"));
    assertEquals(MessageType.PUT_FILE.wire(), put.type());
    FileHeader h = FileHeader.decode(put.payload());
    assertEquals("/tmp/hello.txt", h.path());
    assertEquals(0644, h.mode());
    Frame ready = decodeWhole(ex.get("put.ready"));
    Frame d1 = decodeWhole(ex.get("put.data1"));
    Frame d2 = decodeWhole(ex.get("put.data2"));
    Frame end = decodeWhole(ex.get("put.end"));
    for (Frame f : List.of(ready, d1, d2, end)) {
      assertEquals(put.requestId(), f.requestId(), "every frame of a PUT_FILE carries its id");
    }
    assertEquals(MessageType.PUT_FILE.wire(), ready.type());
    assertEquals(Frame.FLAG_RESPONSE, ready.flags(), "ready: RESPONSE, no END");
    PayloadReader.requireEmpty(ready.payload());
    assertEquals(MessageType.FILE_DATA.wire(), d1.type());
    assertEquals(0, d1.flags());
    assertEquals(MessageType.FILE_DATA.wire(), d2.type());
    assertEquals(Frame.FLAG_END, d2.flags(), "the last chunk carries END");
    assertEquals(MessageType.PUT_FILE.wire(), end.type());
    assertEquals(Frame.FLAG_RESPONSE | Frame.FLAG_END, end.flags());
    PayloadReader.requireEmpty(end.payload());
    MessageDigest sha = MessageDigest.getInstance("SHA-256");
    sha.update(d1.payload());
    sha.update(d2.payload());
    assertEquals(d1.payload().length + d2.payload().length, h.size());
    assertEquals(HexFormat.of().formatHex(sha.digest()), h.sha256());

    Frame err = decodeWhole(ex.get("error.framing"));
    assertEquals(MessageType.ERROR.wire(), err.type());
    assertEquals(0, err.requestId(), "framing errors carry id 0");
    assertEquals(ErrorCode.BAD_MAGIC, ErrorPayload.decode(err.payload()).code());
  }

  @Test
  void theDocumentsTablesListEveryMessageTypeAndErrorCodeWithItsValue() throws Exception {
    String doc = Files.readString(document(), StandardCharsets.UTF_8);
    for (MessageType t : MessageType.values()) {
      String row = String.format("| %s | `0x%02x` |", t.name(), t.wire());
      assertTrue(doc.contains(row), "the messages table lacks " + row);
    }
    for (ErrorCode c : ErrorCode.values()) {
      String row = "| " + c.name() + " | " + c.wire() + " |";
      assertTrue(doc.contains(row), "the error code table lacks " + row);
    }
    assertTrue(
        doc.contains(
            String.valueOf(FrameCodec.DEFAULT_MAX_PAYLOAD)
                .replaceAll("(\\d)(?=(\\d{3})+$)", "$1,")),
        "the payload limit");
  }
}
