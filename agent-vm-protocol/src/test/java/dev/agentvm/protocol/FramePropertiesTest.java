package dev.agentvm.protocol;

import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;

/** Property tests for the frame codec (QuickTheories). */
class FramePropertiesTest {

  private static Gen<byte[]> bytes(int maxLen) {
    return lists()
        .of(integers().between(0, 255))
        .ofSizeBetween(0, maxLen)
        .map(
            l -> {
              byte[] b = new byte[l.size()];
              for (int i = 0; i < b.length; i++) b[i] = (byte) (int) l.get(i);
              return b;
            });
  }

  private static Gen<Frame> frames() {
    return integers()
        .between(0, 255)
        .zip(
            integers().between(0, 0xFFFF),
            integers().all(),
            bytes(300),
            (t, f, id, p) -> new Frame(t, f, id, p));
  }

  @Test
  void everyFrameRoundTrips() {
    qt().forAll(frames())
        .checkAssert(
            f -> {
              Frame back = read(new ByteArrayInputStream(FrameCodec.encode(f)), 1 << 20);
              if (!f.equals(back)) throw new AssertionError(f + " came back as " + back);
            });
  }

  @Test
  void everySingleBitFlipIsDetected() {
    qt().forAll(frames(), integers().between(0, Integer.MAX_VALUE))
        .checkAssert(
            (f, seed) -> {
              byte[] b = FrameCodec.encode(f);
              int bit = seed % (b.length * 8);
              b[bit / 8] ^= (byte) (1 << (bit % 8));
              try {
                Frame back = new FrameReader(new ByteArrayInputStream(b)).read();
                throw new AssertionError("bit " + bit + " flip not detected, read " + back);
              } catch (ProtocolException | EOFException expected) {
                // detected: checksum, magic, version, or a length that now runs past the end
              } catch (IOException e) {
                throw new AssertionError(e);
              }
            });
  }

  @Test
  void arbitraryBytesNeverCrashHangOrOverAllocate() {
    int max = 4096;
    qt().forAll(bytes(2000))
        .checkAssert(
            b -> {
              CountingInput in = new CountingInput(new ByteArrayInputStream(b));
              FrameReader r = new FrameReader(in, max);
              // keep reading (resyncing after errors) until the input is exhausted; must terminate
              for (int guard = 0; guard < 10_000; guard++) {
                try {
                  if (r.read() == null) return;
                } catch (ProtocolException e) {
                  try {
                    if (!r.resync()) return;
                  } catch (IOException io) {
                    throw new AssertionError(io);
                  }
                } catch (EOFException e) {
                  return;
                } catch (IOException e) {
                  throw new AssertionError(e);
                }
              }
              throw new AssertionError("reader did not terminate on " + b.length + " bytes");
            });
  }

  @Test
  void oneByteFragmentedReadsAndWritesWork() {
    qt().forAll(frames(), frames())
        .checkAssert(
            (a, b) -> {
              ByteArrayOutputStream sink = new ByteArrayOutputStream();
              FrameWriter w =
                  new FrameWriter(
                      new java.io.OutputStream() {
                        @Override
                        public void write(int x) {
                          sink.write(x);
                        }

                        @Override
                        public void write(byte[] buf, int off, int len) {
                          for (int i = 0; i < len; i++) sink.write(buf[off + i]);
                        }
                      });
              try {
                w.write(a);
                w.write(b);
                InputStream oneByte =
                    new InputStream() {
                      final ByteArrayInputStream src = new ByteArrayInputStream(sink.toByteArray());

                      @Override
                      public int read() {
                        return src.read();
                      }

                      @Override
                      public int read(byte[] buf, int off, int len) {
                        return len == 0 ? 0 : src.read(buf, off, 1);
                      }
                    };
                FrameReader r = new FrameReader(oneByte);
                if (!a.equals(r.read()) || !b.equals(r.read()) || r.read() != null)
                  throw new AssertionError("fragmented read differs");
              } catch (IOException e) {
                throw new AssertionError(e);
              }
            });
  }

  private static Frame read(InputStream in, int max) {
    try {
      return new FrameReader(in, max).read();
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  private static final class CountingInput extends java.io.FilterInputStream {
    CountingInput(InputStream in) {
      super(in);
    }
  }
}
