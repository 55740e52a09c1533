package dev.agentvm.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

class FrameCodecTest {

  @Test
  void encodesExactGoldenBytes() {
    byte[] bytes =
        FrameCodec.encode(
            new Frame(
                MessageType.PING.wire(),
                Frame.FLAG_RESPONSE,
                0x01020304,
                new byte[] {(byte) 0xAB}));
    // magic, version 1, type 2, flags 0x0001, request id, length 1, header crc, payload, frame crc
    assertEquals(
        "41564d50"
            + "01"
            + "02"
            + "0001"
            + "01020304"
            + "00000001"
            + "b493b887"
            + "ab"
            + "d6e7ab25",
        HexFormat.of().formatHex(bytes));
  }

  @Test
  void decodesGoldenBytes() throws IOException {
    byte[] golden =
        HexFormat.of()
            .parseHex(
                "41564d50"
                    + "01"
                    + "02"
                    + "0001"
                    + "01020304"
                    + "00000001"
                    + "b493b887"
                    + "ab"
                    + "d6e7ab25");
    Frame f = new FrameReader(new ByteArrayInputStream(golden)).read();
    assertEquals(new Frame(2, 1, 0x01020304, new byte[] {(byte) 0xAB}), f);
  }

  @Test
  void cleanEndOfStreamBetweenFramesIsNull() throws IOException {
    assertNull(new FrameReader(new ByteArrayInputStream(new byte[0])).read());
  }

  @Test
  void endInsideFrameIsEof() {
    byte[] b = FrameCodec.encode(Frame.request(MessageType.PING, 1, new byte[10]));
    byte[] cut = java.util.Arrays.copyOf(b, b.length - 3);
    assertThrows(EOFException.class, () -> new FrameReader(new ByteArrayInputStream(cut)).read());
  }

  @Test
  void oversizedLengthRejectedBeforeAllocation() throws IOException {
    byte[] b = FrameCodec.encode(Frame.request(MessageType.PING, 1, new byte[100]));
    ProtocolException e =
        assertThrows(
            ProtocolException.class, () -> new FrameReader(new ByteArrayInputStream(b), 99).read());
    assertEquals(ErrorCode.FRAME_TOO_LARGE, e.code());
  }

  @Test
  void writerRefusesOversizedPayload() {
    FrameWriter w = new FrameWriter(new ByteArrayOutputStream(), 8);
    ProtocolException e =
        assertThrows(
            ProtocolException.class,
            () -> w.write(Frame.request(MessageType.PING, 1, new byte[9])));
    assertEquals(ErrorCode.FRAME_TOO_LARGE, e.code());
  }

  @Test
  void unknownVersionIsClearError() {
    byte[] b = FrameCodec.encode(Frame.request(MessageType.PING, 1, new byte[0]));
    b[4] = 9;
    // fix the header crc so the version check itself is what fails
    java.util.zip.CRC32 crc = new java.util.zip.CRC32();
    crc.update(b, 0, 16);
    FrameCodec.putInt(b, 16, (int) crc.getValue());
    ProtocolException e =
        assertThrows(
            ProtocolException.class, () -> new FrameReader(new ByteArrayInputStream(b)).read());
    assertEquals(ErrorCode.UNSUPPORTED_VERSION, e.code());
    assertTrue(e.getMessage().contains("version 9"), e.getMessage());
  }

  @Test
  void unknownTypeIsDeliveredRawSoReceiverCanAnswer() throws IOException {
    byte[] b = FrameCodec.encode(new Frame(0xEE, 0, 7, new byte[0]));
    Frame f = new FrameReader(new ByteArrayInputStream(b)).read();
    assertEquals(0xEE, f.type());
    assertTrue(f.messageType().isEmpty());
  }

  @Test
  void resyncSkipsGarbageToNextFrame() throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write("garbage AVM noise".getBytes(StandardCharsets.US_ASCII));
    Frame good = Frame.request(MessageType.HELLO, 42, new HelloRequest(1, 1, "t").encode());
    out.write(FrameCodec.encode(good));
    FrameReader r = new FrameReader(new ByteArrayInputStream(out.toByteArray()));
    ProtocolException e = assertThrows(ProtocolException.class, r::read);
    assertEquals(ErrorCode.BAD_MAGIC, e.code());
    assertTrue(r.resync());
    assertEquals(good, r.read());
    assertNull(r.read());
  }

  @Test
  void helloPayloadsRoundTrip() throws IOException {
    HelloRequest rq = new HelloRequest(1, 3, "agent-vm 0.1");
    assertEquals(rq, HelloRequest.decode(rq.encode()));
    HelloResponse rs =
        new HelloResponse(1, "0.1", List.of("exec", "ünïcode"), "6.1.0-28-amd64", 2900, 3100, 4400);
    assertEquals(rs, HelloResponse.decode(rs.encode()));
    ErrorPayload ep = new ErrorPayload(ErrorCode.UNKNOWN_TYPE, "type 0xee");
    assertEquals(ep, ErrorPayload.decode(ep.encode()));
  }

  @Test
  void truncatedOrTrailingPayloadIsMalformed() {
    byte[] p = new HelloRequest(1, 1, "x").encode();
    ProtocolException shortE =
        assertThrows(
            ProtocolException.class,
            () -> HelloRequest.decode(java.util.Arrays.copyOf(p, p.length - 1)));
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, shortE.code());
    ProtocolException longE =
        assertThrows(
            ProtocolException.class,
            () -> HelloRequest.decode(java.util.Arrays.copyOf(p, p.length + 1)));
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, longE.code());
  }

  @Test
  void everyDecoderRefusesTrailingBytes() {
    List<byte[]> payloads =
        List.of(
            new HelloResponse(1, "a", List.of("x"), "k", 1, 2, 3).encode(),
            new ErrorPayload(ErrorCode.NOT_FOUND, "m").encode(),
            new ExecSpec(List.of("true"), "", java.util.Map.of(), "", new byte[0], 0, 1, 0)
                .encode(),
            new ExitStatus(0, 0, 1, false, false, false, false).encode(),
            new FileHeader("/x", 0644, 0, "00").encode(),
            new MountSpec("t", "/m", true).encode(),
            new StatusReport(1, 2, 3, 0.5, 4, 5).encode(),
            new byte[0]);
    List<Decoder> decoders =
        List.of(
            HelloResponse::decode,
            ErrorPayload::decode,
            ExecSpec::decode,
            ExitStatus::decode,
            FileHeader::decode,
            MountSpec::decode,
            StatusReport::decode,
            PayloadReader::requireEmpty);
    for (int i = 0; i < payloads.size(); i++) {
      byte[] p = payloads.get(i);
      Decoder d = decoders.get(i);
      assertDoesNotThrow(() -> d.decode(p), "decoder " + i);
      byte[] longer = java.util.Arrays.copyOf(p, p.length + 1);
      ProtocolException e = assertThrows(ProtocolException.class, () -> d.decode(longer));
      assertEquals(ErrorCode.MALFORMED_PAYLOAD, e.code(), "decoder " + i);
      assertTrue(e.detail().contains("trailing"), e.detail());
    }
  }

  @FunctionalInterface
  interface Decoder {
    void decode(byte[] payload) throws ProtocolException;
  }

  @Test
  void lyingStringLengthDoesNotAllocate() {
    byte[] p = new PayloadWriter().u16(1).u16(1).i32(Integer.MAX_VALUE).toByteArray();
    ProtocolException e = assertThrows(ProtocolException.class, () -> HelloRequest.decode(p));
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, e.code());
  }

  @Test
  void goldenBytesMatchEncoder() {
    // guards the literal above against an accidental layout change
    assertArrayEquals(
        HexFormat.of().parseHex("41564d50010200010102030400000001b493b887abd6e7ab25"),
        FrameCodec.encode(new Frame(2, 1, 0x01020304, new byte[] {(byte) 0xAB})));
  }
}
