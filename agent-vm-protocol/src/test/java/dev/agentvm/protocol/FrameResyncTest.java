package dev.agentvm.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;

/**
 * Issue 14: resynchronisation must deliver every valid frame whose bytes are intact, whatever
 * garbage precedes it. Golden-byte regressions for the reported cases, and a property over valid
 * frames interleaved with garbage built to look like frame starts.
 */
class FrameResyncTest {
  private static final HexFormat HEX = HexFormat.of();

  /** The PING-typed response of docs/protocol.md: request id 0x01020304, payload AB. */
  private static final String GOLDEN = "41564d50010200010102030400000001b493b887abd6e7ab25";

  private static final Frame GOLDEN_FRAME = new Frame(2, 1, 0x01020304, new byte[] {(byte) 0xAB});

  /** What a peer sees reading a stream the way the guest agent and the host client do. */
  private record Outcome(List<Frame> frames, List<ErrorCode> errors, boolean endedInsideFrame) {}

  private static Outcome readAll(InputStream in, int max) throws IOException {
    FrameReader r = new FrameReader(in, max);
    List<Frame> frames = new ArrayList<>();
    List<ErrorCode> errors = new ArrayList<>();
    for (int guard = 0; guard < 1_000_000; guard++) {
      try {
        Frame f = r.read();
        if (f == null) {
          return new Outcome(frames, errors, false);
        }
        frames.add(f);
      } catch (ProtocolException e) {
        errors.add(e.code());
        if (!r.resync()) {
          return new Outcome(frames, errors, false);
        }
      } catch (EOFException e) {
        return new Outcome(frames, errors, true);
      }
    }
    throw new AssertionError("reader did not terminate");
  }

  private static Outcome readAll(String hex) throws IOException {
    return readAll(new ByteArrayInputStream(HEX.parseHex(hex)), FrameCodec.DEFAULT_MAX_PAYLOAD);
  }

  @Test
  void partialMagicThenFrame() throws IOException {
    // "AVM" then the golden frame: the first header read ends inside the frame
    Outcome o = readAll("41564d" + GOLDEN);
    assertEquals(List.of(GOLDEN_FRAME), o.frames());
    assertEquals(List.of(ErrorCode.BAD_MAGIC), o.errors()); // "AVMA": one error, one resync
  }

  @Test
  void wholeMagicThenFrame() throws IOException {
    // "AVMP" then the golden frame: the bogus header's second magic starts at its byte 4
    Outcome o = readAll("41564d50" + GOLDEN);
    assertEquals(List.of(GOLDEN_FRAME), o.frames());
    assertEquals(List.of(ErrorCode.BAD_CHECKSUM), o.errors());
  }

  @Test
  void headerPrefixThenFrame() throws IOException {
    // the golden frame's first 10 header bytes, then the frame itself
    Outcome o = readAll(GOLDEN.substring(0, 20) + GOLDEN);
    assertEquals(List.of(GOLDEN_FRAME), o.frames());
    assertEquals(List.of(ErrorCode.BAD_CHECKSUM), o.errors());
  }

  @Test
  void singleLettersOfTheMagicThenFrames() throws IOException {
    // "A", "AV", "AVM" each followed by a frame, in one stream
    Outcome o = readAll("41" + GOLDEN + "4156" + GOLDEN + "41564d" + GOLDEN);
    assertEquals(List.of(GOLDEN_FRAME, GOLDEN_FRAME, GOLDEN_FRAME), o.frames());
  }

  @Test
  void rejectedTooLargeHeaderDoesNotHideTheFrameAfterIt() throws IOException {
    byte[] huge = header(1, 0, 7, 0xFFFFFFF0);
    Outcome o = readAll(HEX.formatHex(huge) + GOLDEN);
    assertEquals(List.of(GOLDEN_FRAME), o.frames());
    assertEquals(List.of(ErrorCode.FRAME_TOO_LARGE), o.errors());
  }

  @Test
  void frameWithBadFrameCrcIsSkippedWholeAndTheNextIsRead() throws IOException {
    byte[] bad = HEX.parseHex(GOLDEN);
    bad[bad.length - 1] ^= 1;
    Outcome o = readAll(HEX.formatHex(bad) + GOLDEN);
    assertEquals(List.of(GOLDEN_FRAME), o.frames());
    assertEquals(List.of(ErrorCode.BAD_CHECKSUM), o.errors());
  }

  @Test
  void partialMagicAtEndOfStreamIsNotAFrame() throws IOException {
    Outcome o = readAll(GOLDEN + "41564d");
    assertEquals(List.of(GOLDEN_FRAME), o.frames());
    assertEquals(true, o.endedInsideFrame());
  }

  // ---------------------------------------------------------------------------------------------
  // Property: valid frames between arbitrary garbage.

  private static final int MAX = 4096;

  /** A valid frame header (version, type, flags 0, request id, length) with its header CRC. */
  private static byte[] header(int version, int type, int id, int length) {
    byte[] h = new byte[FrameCodec.HEADER_SIZE];
    FrameCodec.putInt(h, 0, FrameCodec.MAGIC);
    h[4] = (byte) version;
    h[5] = (byte) type;
    FrameCodec.putInt(h, 8, id);
    FrameCodec.putInt(h, 12, length);
    CRC32 c = new CRC32();
    c.update(h, 0, 16);
    FrameCodec.putInt(h, 16, (int) c.getValue());
    return h;
  }

  /** One piece of the stream: a valid frame (kept as such) or garbage. */
  // ArrayRecordComponent: a test holder, never compared or hashed
  @SuppressWarnings("ArrayRecordComponent")
  private record Piece(Frame frame, byte[] bytes) {}

  private static Piece garbage(int kind, long seed) {
    Random rnd = new Random(seed);
    byte[] real = FrameCodec.encode(randomFrame(rnd));
    byte[] g =
        switch (kind) {
          case 0 -> randomBytes(rnd, rnd.nextInt(48));
          case 1 -> "A".getBytes(StandardCharsets.US_ASCII);
          case 2 -> "AV".getBytes(StandardCharsets.US_ASCII);
          case 3 -> "AVM".getBytes(StandardCharsets.US_ASCII);
          case 4 -> "AVMP".getBytes(StandardCharsets.US_ASCII);
          // a prefix of a real header (1..19 bytes)
          case 5 -> java.util.Arrays.copyOf(real, 1 + rnd.nextInt(FrameCodec.HEADER_SIZE - 1));
          // a real frame cut short after its header: its header is accepted, and swallows what
          // follows up to its announced length (the one case where a frame may be lost)
          case 6 ->
              java.util.Arrays.copyOf(
                  real, FrameCodec.HEADER_SIZE + rnd.nextInt(real.length - FrameCodec.HEADER_SIZE));
          // a header that checks out but announces more than the maximum
          case 7 ->
              header(
                  1,
                  rnd.nextInt(256),
                  rnd.nextInt(),
                  MAX + 1 + (rnd.nextBoolean() ? 0 : (1 << 24) + rnd.nextInt(1 << 30)));
          // a header that checks out but speaks another version
          case 8 -> header(2 + rnd.nextInt(200), rnd.nextInt(256), rnd.nextInt(), rnd.nextInt(64));
          // a real frame with one payload or trailer byte changed: skipped whole
          default -> {
            byte[] b = real.clone();
            int i = FrameCodec.HEADER_SIZE + rnd.nextInt(b.length - FrameCodec.HEADER_SIZE);
            b[i] ^= (byte) (1 + rnd.nextInt(255));
            yield b;
          }
        };
    return new Piece(null, g);
  }

  private static Frame randomFrame(Random rnd) {
    return new Frame(
        rnd.nextInt(256), rnd.nextInt(0x10000), rnd.nextInt(), randomBytes(rnd, rnd.nextInt(80)));
  }

  private static byte[] randomBytes(Random rnd, int n) {
    byte[] b = new byte[n];
    rnd.nextBytes(b);
    return b;
  }

  private static Gen<Piece> pieces() {
    Gen<Piece> frame = integers().all().map(seed -> new Piece(randomFrame(new Random(seed)), null));
    Gen<Piece> junk = integers().between(0, 9).zip(integers().all(), (k, s) -> garbage(k, s));
    return frame.mix(junk, 50);
  }

  /** A header accepted by the reading rules, at {@code [start, end)}; its frame, if intact. */
  private record Accepted(int start, long end, Frame frame) {}

  /**
   * The reading rules of docs/protocol.md applied to the whole stream at once: scan for a header
   * that passes magic, header CRC, version and length (else move on by one byte); an accepted
   * header's extent is delivered if its frame CRC holds and skipped whole if not.
   */
  private static List<Accepted> model(byte[] s) {
    List<Accepted> out = new ArrayList<>();
    int p = 0;
    CRC32 c = new CRC32();
    while (p + FrameCodec.HEADER_SIZE <= s.length) {
      c.reset();
      c.update(s, p, 16);
      long len = FrameCodec.getInt(s, p + 12) & 0xFFFFFFFFL;
      boolean accepted =
          FrameCodec.getInt(s, p) == FrameCodec.MAGIC
              && (int) c.getValue() == FrameCodec.getInt(s, p + 16)
              && (s[p + 4] & 0xFF) == FrameCodec.VERSION
              && len <= MAX;
      if (!accepted) {
        p++;
        continue;
      }
      long end = p + FrameCodec.HEADER_SIZE + len + FrameCodec.TRAILER_SIZE;
      Frame f = null;
      if (end <= s.length) {
        int n = (int) (end - p - FrameCodec.TRAILER_SIZE);
        c.reset();
        c.update(s, p, n);
        if ((int) c.getValue() == FrameCodec.getInt(s, p + n)) {
          f =
              new Frame(
                  s[p + 5] & 0xFF,
                  (s[p + 6] & 0xFF) << 8 | (s[p + 7] & 0xFF),
                  FrameCodec.getInt(s, p + 8),
                  java.util.Arrays.copyOfRange(s, p + FrameCodec.HEADER_SIZE, p + n));
        }
      }
      out.add(new Accepted(p, end, f));
      p = (int) Math.min(end, s.length);
    }
    return out;
  }

  @Test
  void everyIntactFrameBetweenGarbageIsDeliveredInOrder() {
    qt().withExamples(3000)
        .forAll(lists().of(pieces()).ofSizeBetween(0, 24), integers().all())
        .checkAssert(
            (list, chunkSeed) -> {
              ByteArrayOutputStream out = new ByteArrayOutputStream();
              List<Frame> sent = new ArrayList<>();
              List<Integer> starts = new ArrayList<>();
              for (Piece p : list) {
                if (p.frame() != null) {
                  sent.add(p.frame());
                  starts.add(out.size());
                  out.writeBytes(FrameCodec.encode(p.frame()));
                } else {
                  out.writeBytes(p.bytes());
                }
              }
              byte[] stream = out.toByteArray();
              List<Accepted> accepted = model(stream);
              // every frame sent whole is found, unless it starts inside another accepted header's
              // extent (a bogus header, or garbage that happened to complete a frame)
              for (int i = 0; i < sent.size(); i++) {
                int start = starts.get(i);
                Frame frame = sent.get(i);
                boolean swallowed =
                    accepted.stream().anyMatch(a -> a.start() < start && start < a.end());
                boolean found =
                    accepted.stream().anyMatch(a -> a.start() == start && frame.equals(a.frame()));
                if (!swallowed && !found) {
                  throw new AssertionError("the test's model lost frame " + i);
                }
              }
              List<Frame> expected = new ArrayList<>();
              for (Accepted a : accepted) {
                if (a.frame() != null) {
                  expected.add(a.frame());
                }
              }
              Outcome o;
              try {
                o = readAllMeasured(new Chunked(stream, chunkSeed));
              } catch (IOException e) {
                throw new AssertionError("reader threw " + e, e);
              }
              if (!o.frames().equals(expected)) {
                throw new AssertionError(
                    "delivered "
                        + o.frames()
                        + "\nexpected "
                        + expected
                        + "\nstream "
                        + HEX.formatHex(stream));
              }
            });
  }

  /**
   * Like {@link #readAll}, and checks that no single read or resync allocates much beyond the
   * maximum payload, whatever length a header announces (some announce 16 MiB and more).
   */
  private static Outcome readAllMeasured(InputStream in) throws IOException {
    com.sun.management.ThreadMXBean mx =
        (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    FrameReader r = new FrameReader(in, MAX);
    List<Frame> frames = new ArrayList<>();
    for (int guard = 0; guard < 1_000_000; guard++) {
      long before = mx.getCurrentThreadAllocatedBytes();
      Outcome end = null;
      try {
        Frame f = r.read();
        if (f == null) {
          end = new Outcome(frames, List.of(), false);
        } else {
          frames.add(f);
        }
      } catch (ProtocolException e) {
        if (!r.resync()) {
          end = new Outcome(frames, List.of(), false);
        }
      } catch (EOFException e) {
        end = new Outcome(frames, List.of(), true);
      }
      long used = mx.getCurrentThreadAllocatedBytes() - before;
      if (used > MAX + (1 << 20)) { // slack: buffers, exceptions, first-use class set-up
        throw new AssertionError("one read allocated " + used + " bytes, max payload " + MAX);
      }
      if (end != null) {
        return end;
      }
    }
    throw new AssertionError("reader did not terminate");
  }

  /** Hands the bytes out in reads of random sizes (1..64 bytes), as a pipe or port may. */
  private static final class Chunked extends InputStream {
    private final ByteArrayInputStream src;
    private final Random rnd;

    Chunked(byte[] b, long seed) {
      src = new ByteArrayInputStream(b);
      rnd = new Random(seed);
    }

    @Override
    public int read() {
      return src.read();
    }

    @Override
    public int read(byte[] b, int off, int len) {
      return len == 0 ? 0 : src.read(b, off, Math.min(len, 1 + rnd.nextInt(64)));
    }
  }
}
