package dev.agentvm.guest.agent;

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
 * as it takes; once a frame has begun, a read that gets no byte for {@link #STALL_MILLIS} fails
 * with {@link Stalled}, and the agent drops the partial frame.
 */
final class StallGuard extends InputStream {
  /** How long a frame that has begun may go without a byte. */
  static final long STALL_MILLIS = 5_000;

  /** Thrown when a begun frame stalled; the stream stays usable. */
  static final class Stalled extends IOException {
    private static final long serialVersionUID = 1L;

    Stalled(long millis) {
      super("no byte for " + millis + " ms inside a frame");
    }
  }

  private static final byte[] EOF = new byte[0];

  private final BlockingQueue<byte[]> chunks = new ArrayBlockingQueue<>(16);
  private byte[] current = new byte[0];
  private int pos;
  private volatile boolean inFrame;
  private final long stallMillis;

  /** Starts the thread that copies {@code device} into this stream. */
  StallGuard(InputStream device, long idlePollMillis) {
    this(device, idlePollMillis, STALL_MILLIS);
  }

  StallGuard(InputStream device, long idlePollMillis, long stallMillis) {
    this.stallMillis = stallMillis;
    Thread t =
        new Thread(
            () -> {
              byte[] buf = new byte[64 * 1024];
              try {
                while (true) {
                  int n = device.read(buf);
                  if (n < 0) {
                    chunks.put(EOF); // no host: virtio-serial reads nothing until one connects
                    Thread.sleep(idlePollMillis);
                  } else if (n > 0) {
                    chunks.put(Arrays.copyOf(buf, n));
                  }
                }
              } catch (IOException e) {
                GuestAgent.log("port read failed: " + e);
                try {
                  chunks.put(EOF);
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
   * Says whether the next read starts a frame ({@code false}: wait as long as it takes) or
   * continues one ({@code true}: at most {@link #STALL_MILLIS} per read).
   */
  void inFrame(boolean inFrame) {
    this.inFrame = inFrame;
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
    if (pos == current.length) {
      byte[] next;
      try {
        next = inFrame ? chunks.poll(stallMillis, TimeUnit.MILLISECONDS) : chunks.take();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("interrupted reading the port");
      }
      if (next == null) {
        throw new Stalled(stallMillis);
      }
      if (next == EOF) {
        return -1;
      }
      current = next;
      pos = 0;
    }
    int n = Math.min(len, current.length - pos);
    System.arraycopy(current, pos, b, off, n);
    pos += n;
    inFrame = true; // the frame's first bytes are here: the rest must follow
    return n;
  }
}
