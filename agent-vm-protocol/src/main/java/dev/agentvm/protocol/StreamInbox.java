package dev.agentvm.protocol;

import java.io.IOException;
import java.util.ArrayDeque;

/**
 * The receiving side of a stream: DATA chunks the reader thread hands over without ever blocking,
 * for a consumer thread that writes them on. Holds at most the window: a peer that sends more than
 * its credit broke the rules, and {@link #offer} says so. Thread-safe.
 */
public final class StreamInbox {
  private static final byte[] TIMED_OUT = new byte[0];
  private static final byte[] END = new byte[0];

  /** Chunks below this are packed into shared buffers, so tiny frames cannot multiply memory. */
  static final int SMALL = 4096;

  private final long window;
  private final ArrayDeque<byte[]> chunks = new ArrayDeque<>();
  private byte[] tail = new byte[0]; // guarded by this: small chunks packed, tailLen used
  private int tailLen; // guarded by this
  private long buffered; // guarded by this
  private boolean ended; // guarded by this: the peer sent CLOSE
  private String failure = ""; // guarded by this: non-empty once reset

  public StreamInbox(int window) {
    this.window = window;
  }

  /**
   * Hands over a DATA chunk. Returns false, and keeps nothing, when the chunk would take the
   * buffered bytes above the window, or after the end.
   */
  public synchronized boolean offer(byte[] data) {
    if (ended || !failure.isEmpty() || buffered + data.length > window) {
      return false;
    }
    if (data.length >= SMALL) {
      seal();
      chunks.add(data);
    } else {
      if (tailLen + data.length > tail.length) {
        seal();
        tail = new byte[4 * SMALL];
      }
      System.arraycopy(data, 0, tail, tailLen, data.length);
      tailLen += data.length;
    }
    buffered += data.length;
    notifyAll();
    return true;
  }

  /** Moves the packed small chunks into the queue as one chunk. */
  private void seal() {
    if (tailLen > 0) {
      chunks.add(java.util.Arrays.copyOf(tail, tailLen));
      tailLen = 0;
    }
  }

  /** Whether the peer sent CLOSE. */
  public synchronized boolean ended() {
    return ended;
  }

  /** The peer sends no more: {@link #take} answers {@link #isEnd} once the chunks are taken. */
  public synchronized void end() {
    ended = true;
    notifyAll();
  }

  /** The stream was reset: {@link #take} fails from now on, chunks not taken are dropped. */
  public synchronized void fail(String why) {
    failure = why.isEmpty() ? "reset" : why;
    chunks.clear();
    tail = new byte[0];
    tailLen = 0;
    buffered = 0;
    notifyAll();
  }

  /**
   * The next chunk, waiting up to {@code timeoutMillis}; {@link #isEnd} at the end of the stream,
   * {@link #timedOut} when the wait timed out.
   *
   * @throws IOException once the stream was reset
   */
  public synchronized byte[] take(long timeoutMillis) throws IOException, InterruptedException {
    long end = System.nanoTime() + timeoutMillis * 1_000_000L;
    while (chunks.isEmpty() && tailLen == 0 && !ended && failure.isEmpty()) {
      long left = (end - System.nanoTime()) / 1_000_000L;
      if (left <= 0) {
        return TIMED_OUT;
      }
      wait(left);
    }
    if (!failure.isEmpty()) {
      throw new IOException("stream reset: " + failure);
    }
    if (chunks.isEmpty()) {
      seal();
    }
    if (chunks.isEmpty()) {
      return END;
    }
    byte[] c = chunks.remove();
    buffered -= c.length;
    return c;
  }

  /** Whether {@code chunk}, an answer of {@link #take}, means the wait timed out. */
  public static boolean timedOut(byte[] chunk) {
    return chunk == TIMED_OUT;
  }

  /** Whether {@code chunk}, an answer of {@link #take}, means the peer sent CLOSE. */
  public static boolean isEnd(byte[] chunk) {
    return chunk == END;
  }

  /** The bytes received and not yet taken. */
  public synchronized long buffered() {
    return buffered;
  }
}
