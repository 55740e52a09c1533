package dev.agentvm.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;
import static org.quicktheories.generators.SourceDSL.strings;

import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;

/** The egress stream messages: codecs, and the flow-control halves both peers use. */
class StreamFrameTest {
  private static Gen<byte[]> bytes(int min, int max) {
    return lists()
        .of(integers().between(0, 255))
        .ofSizeBetween(min, max)
        .map(
            l -> {
              byte[] b = new byte[l.size()];
              for (int i = 0; i < b.length; i++) {
                b[i] = (byte) (int) l.get(i);
              }
              return b;
            });
  }

  @Test
  void everyOpRoundTrips() {
    qt().forAll(integers().between(1, Integer.MAX_VALUE), bytes(1, 300))
        .checkAssert(
            (id, data) -> {
              for (StreamFrame f :
                  new StreamFrame[] {
                    StreamFrame.open(id),
                    StreamFrame.data(id, data),
                    StreamFrame.window(id, data.length),
                    StreamFrame.close(id),
                    StreamFrame.reset(id, "denied: " + data.length)
                  }) {
                try {
                  assertEquals(f, StreamFrame.decode(f.encode()));
                } catch (ProtocolException e) {
                  throw new AssertionError(f + ": " + e.getMessage(), e);
                }
              }
            });
  }

  @Test
  void anyBytesDecodeOrFailAsMalformed() {
    qt().forAll(bytes(0, 64))
        .checkAssert(
            b -> {
              try {
                StreamFrame f = StreamFrame.decode(b);
                assertTrue(f.stream() > 0);
                assertArrayEquals(b, f.encode(), "a decoded frame encodes to the same bytes");
              } catch (ProtocolException e) {
                assertEquals(ErrorCode.MALFORMED_PAYLOAD, e.code());
              }
            });
  }

  @Test
  void frameRulesHoldOnTheWire() {
    byte[] big = new byte[StreamFrame.MAX_DATA + 1];
    for (byte[] payload :
        new byte[][] {
          new PayloadWriter().i32(0).u8(1).toByteArray(), // stream id 0
          new PayloadWriter().i32(-5).u8(1).toByteArray(),
          new PayloadWriter().i32(1).u8(9).toByteArray(), // unknown op
          new PayloadWriter().i32(1).u8(2).bytes(new byte[0]).toByteArray(), // empty DATA
          new PayloadWriter().i32(1).u8(2).bytes(big).toByteArray(),
          new PayloadWriter().i32(1).u8(3).i32(0).toByteArray(), // WINDOW of nothing
          new PayloadWriter().i32(1).u8(3).i32(-1).toByteArray(),
          new PayloadWriter().i32(1).u8(4).u8(0).toByteArray() // trailing byte
        }) {
      ProtocolException e =
          assertThrows(ProtocolException.class, () -> StreamFrame.decode(payload));
      assertEquals(ErrorCode.MALFORMED_PAYLOAD, e.code());
    }
  }

  @Test
  void longReasonsAreCutWithoutSplittingACharacter() {
    qt().forAll(strings().allPossible().ofLengthBetween(0, 40), integers().between(500, 600))
        .checkAssert(
            (tail, n) -> {
              String r = "x".repeat(StreamFrame.MAX_REASON - 1) + "\uD83D\uDE00" + "y".repeat(n);
              StreamFrame f = StreamFrame.reset(1, r);
              assertTrue(f.reason().length() <= StreamFrame.MAX_REASON);
              assertFalse(Character.isHighSurrogate(f.reason().charAt(f.reason().length() - 1)));
              f.encode(); // valid Unicode still
            });
  }

  @Test
  void egressSpecRoundTripsAndRefusesOutOfRange() throws ProtocolException {
    EgressSpec s = new EgressSpec(3128, 256 * 1024, 64);
    assertEquals(s, EgressSpec.decode(s.encode()));
    for (int[] bad :
        new int[][] {
          {0, 65536, 1},
          {65536, 65536, 1},
          {80, 1024, 1},
          {80, EgressSpec.MAX_WINDOW + 1, 1},
          {80, 65536, 0},
          {80, 65536, EgressSpec.MAX_STREAMS + 1}
        }) {
      byte[] p = new PayloadWriter().i32(bad[0]).i32(bad[1]).i32(bad[2]).toByteArray();
      assertEquals(
          ErrorCode.MALFORMED_PAYLOAD,
          assertThrows(ProtocolException.class, () -> EgressSpec.decode(p)).code());
    }
  }

  @Test
  void creditIsTakenGrantedAndClosed() throws Exception {
    StreamCredit c = new StreamCredit(10);
    assertEquals(10, c.take(64, 0));
    assertEquals(0, c.take(64, 20), "no credit: the wait times out");
    CompletableFuture<Integer> waiter =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                return c.take(3, 10_000);
              } catch (InterruptedException e) {
                throw new IllegalStateException(e);
              }
            });
    c.grant(5);
    assertEquals(3, waiter.get(5, TimeUnit.SECONDS));
    assertEquals(2, c.available());
    c.grant(Integer.MAX_VALUE);
    c.grant(Integer.MAX_VALUE);
    assertEquals(Integer.MAX_VALUE, c.available(), "a peer cannot wrap the credit");
    c.close();
    assertEquals(-1, c.take(1, 1000));
    assertThrows(IllegalArgumentException.class, () -> c.grant(0));
  }

  @Test
  void anInboxHoldsAtMostItsWindow() throws Exception {
    StreamInbox in = new StreamInbox(10);
    assertTrue(in.offer(new byte[6]));
    assertFalse(in.offer(new byte[5]), "beyond the window: the peer broke the rules");
    assertTrue(in.offer(new byte[4]));
    assertEquals(10, in.buffered());
    assertEquals(10, in.take(0).length, "small chunks come out packed");
    assertTrue(in.offer(new byte[6]), "taking frees the window");
    assertTrue(StreamInbox.timedOut(new StreamInbox(1).take(10)));
    in.end();
    assertFalse(in.offer(new byte[1]), "nothing after the end");
    assertEquals(6, in.take(0).length);
    assertTrue(StreamInbox.isEnd(in.take(0)));
    StreamInbox r = new StreamInbox(10);
    r.offer(new byte[3]);
    r.fail("gone");
    IOException e = assertThrows(IOException.class, () -> r.take(0));
    assertTrue(e.getMessage().contains("gone"));
    assertEquals(0, r.buffered());
  }

  @Test
  void tinyChunksArePackedAndComeOutInOrder() throws Exception {
    StreamInbox in = new StreamInbox(1 << 20);
    java.io.ByteArrayOutputStream sent = new java.io.ByteArrayOutputStream();
    for (int i = 0; i < 20_000; i++) {
      byte[] b = {(byte) i};
      sent.write(b);
      assertTrue(in.offer(b));
      if (i == 9_999) {
        byte[] big = new byte[StreamInbox.SMALL];
        java.util.Arrays.fill(big, (byte) 7);
        sent.write(big);
        assertTrue(in.offer(big));
      }
    }
    in.end();
    java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
    int takes = 0;
    for (byte[] c = in.take(0); !StreamInbox.isEnd(c); c = in.take(0)) {
      got.write(c);
      takes++;
    }
    assertArrayEquals(sent.toByteArray(), got.toByteArray());
    assertTrue(takes < 20, "20,000 one-byte chunks came out as " + takes);
    assertTrue(in.ended());
  }
}
