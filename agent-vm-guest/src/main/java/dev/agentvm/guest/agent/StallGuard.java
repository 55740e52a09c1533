package dev.agentvm.guest.agent;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The port's input, read on a thread of its own so that a frame that stops arriving half-way can be
 * given up. A virtio-serial port does not always tell the guest that its host went away: when hosts
 * connect and disconnect quickly, the guest sees one stream, and the rest of a frame that a host
 * began and never finished would be taken from the next host's bytes (its header can announce up to
 * 1 MiB), so that the agent waits for a payload nobody sends. Between frames a read waits as long
 * as it takes; once a frame has begun, a read fails with {@link Stalled} (and the agent drops the
 * partial frame) when no byte came for {@link #STALL_MILLIS} or the frame is not whole {@link
 * #FRAME_MILLIS} after its first byte. The second bound matters: a new host that repeats its HELLO
 * every few seconds, as it must, would otherwise feed the half frame forever, a few dozen bytes at
 * a time, and never be answered.
 *
 * <p>A read of the port that fails (or a reader thread that fails otherwise) ends the thread; every
 * read of this stream then throws, and the agent reopens the port.
 */
final class StallGuard extends InputStream {
  /** How long a frame that has begun may go without a byte. */
  static final long STALL_MILLIS = 5_000;

  /** How long one frame may take from its first byte to its last (1 MiB at 100 KiB/s). */
  static final long FRAME_MILLIS = 10_000;

  /** Thrown when a begun frame stalled; the stream stays usable. */
  static final class Stalled extends IOException {
    private static final long serialVersionUID = 1L;

    Stalled(String why) {
      super(why);
    }
  }

  private static final byte[] EOF = new byte[0];
  private static final byte[] FAILED = new byte[0];
  private volatile IOException failure = new IOException("the port's reader failed");
  private boolean failed; // the serving thread's own: the reader thread has ended

  private IOException readerFailed() {
    return new IOException("the port's reader failed: " + failure.getMessage(), failure);
  }

  private final BlockingQueue<byte[]> chunks = new ArrayBlockingQueue<>(16);
  private byte[] current = new byte[0];
  private int pos;
  private volatile boolean inFrame;
  private volatile long frameDeadline; // System.nanoTime() by which the frame begun must be whole
  private final long stallMillis;
  private final long frameMillis;

  /** Starts the thread that copies {@code device} into this stream. */
  StallGuard(InputStream device, long idlePollMillis) {
    this(device, idlePollMillis, STALL_MILLIS, FRAME_MILLIS);
  }

  StallGuard(InputStream device, long idlePollMillis, long stallMillis, long frameMillis) {
    this.stallMillis = stallMillis;
    this.frameMillis = frameMillis;
    Thread t =
        new Thread(
            () -> {
              byte[] buf = new byte[64 * 1024];
              try {
                while (true) {
                  int n = readSome(device, buf);
                  if (n < 0) {
                    chunks.put(EOF); // no host: virtio-serial reads nothing until one connects
                    Thread.sleep(idlePollMillis);
                  } else if (n > 0) {
                    chunks.put(Arrays.copyOf(buf, n));
                  }
                }
              } catch (IOException | RuntimeException | Error e) {
                try {
                  failure = e instanceof IOException io ? io : new IOException(e.toString(), e);
                  GuestAgent.log("port read failed: " + e);
                } catch (RuntimeException | Error again) {
                  // out of memory even for that: the placeholder says enough
                }
                try {
                  chunks.put(FAILED); // this thread ends: the reads fail, and the port is reopened
                } catch (InterruptedException ie) {
                  Thread.currentThread().interrupt();
                }
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            },
            "agentvm-port-reader");
    t.setDaemon(true);
    t.start();
  }

  /**
   * One read of the port: with the native library, what is there up to {@code buf}'s size (about 16
   * of the port's 4 KiB buffers a call, one hand-over to the frame reader for all of them).
   */
  private static int readSome(InputStream device, byte[] buf) throws IOException {
    if (device instanceof FileInputStream f && NativeHelpers.isLoaded()) {
      try {
        return NativeHelpers.readAvailable(f.getFD(), buf, 0, buf.length);
      } catch (LinkageError e) { // a library that loaded but does not bind: never again
        NativeHelpers.unusable(e);
      }
    }
    return device.read(buf);
  }

  /**
   * Says whether the next read starts a frame ({@code false}: wait as long as it takes) or
   * continues one ({@code true}: bounded as the class says).
   */
  void inFrame(boolean inFrame) {
    this.inFrame = inFrame;
    if (inFrame) {
      frameDeadline = System.nanoTime() + frameMillis * 1_000_000; // its bytes are buffered already
    }
  }

  @Override
  public int read() throws IOException {
    byte[] one = new byte[1];
    int n = read(one, 0, 1);
    return n < 0 ? -1 : one[0] & 0xFF;
  }

  @Override
  public int read(byte[] b, int off, int len) throws IOException {
    if (len == 0) {
      return 0;
    }
    if (failed) {
      throw readerFailed();
    }
    if (pos == current.length) {
      byte[] next;
      try {
        if (inFrame) {
          long left = frameDeadline - System.nanoTime();
          if (left <= 0) {
            throw new Stalled(
                "the frame was not whole " + frameMillis + " ms after its first byte");
          }
          next = chunks.poll(Math.min(stallMillis * 1_000_000, left), TimeUnit.NANOSECONDS);
        } else {
          next = chunks.take();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("interrupted reading the port");
      }
      if (next == null) {
        throw new Stalled("no byte for " + stallMillis + " ms inside a frame, or its time ran out");
      }
      if (next == EOF) {
        return -1;
      }
      if (next == FAILED) {
        failed = true; // and every read after this one
        throw readerFailed();
      }
      current = next;
      pos = 0;
    }
    int n = Math.min(len, current.length - pos);
    System.arraycopy(current, pos, b, off, n);
    pos += n;
    if (!inFrame) {
      inFrame = true; // the frame's first bytes are here: the rest must follow, and soon
      frameDeadline = System.nanoTime() + frameMillis * 1_000_000;
    }
    return n;
  }
}
