package dev.agentvm.protocol;

/**
 * The sending side of a stream's flow control: how many more bytes may be sent before the peer
 * grants more with WINDOW. Starts at the EGRESS window; each DATA sent takes from it, each WINDOW
 * received adds to it. Thread-safe.
 */
public final class StreamCredit {
  private long credit; // guarded by this
  private boolean closed; // guarded by this

  public StreamCredit(int initial) {
    if (initial < 0) {
      throw new IllegalArgumentException("credit must be >= 0, was " + initial);
    }
    this.credit = initial;
  }

  /**
   * Takes up to {@code max} bytes of credit, waiting up to {@code timeoutMillis} while there is
   * none.
   *
   * @return the bytes taken (1..max), 0 when the wait timed out, -1 once closed
   */
  public synchronized int take(int max, long timeoutMillis) throws InterruptedException {
    long end = System.nanoTime() + timeoutMillis * 1_000_000L;
    while (credit == 0 && !closed) {
      long left = (end - System.nanoTime()) / 1_000_000L;
      if (left <= 0) {
        return 0;
      }
      wait(left);
    }
    if (closed) {
      return -1;
    }
    int n = (int) Math.min(max, credit);
    credit -= n;
    return n;
  }

  /**
   * Adds credit from a WINDOW; a total above {@code 2^31} is held at that (a peer cannot wrap it).
   */
  public synchronized void grant(int bytes) {
    if (bytes <= 0) {
      throw new IllegalArgumentException("credit must be > 0, was " + bytes);
    }
    credit = Math.min(Integer.MAX_VALUE, credit + bytes);
    notifyAll();
  }

  /** Wakes every waiter for good: the stream ended. */
  public synchronized void close() {
    closed = true;
    notifyAll();
  }

  /** The credit left. */
  public synchronized long available() {
    return credit;
  }
}
