package dev.agentvm.core.agent;

import dev.agentvm.internal.Threads;
import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameCodec;
import dev.agentvm.protocol.ProtocolException;
import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import org.jspecify.annotations.Nullable;

/**
 * Writes frames to the guest on a thread of its own, so that no caller ever blocks on a guest that
 * stopped reading: callers wait for their frame with a deadline ({@link AgentClient}), and the
 * heartbeat does not wait at all. One frame at a time goes out, whole, in queue order.
 *
 * <p>The queue is bounded: a guest that reads nothing cannot make the host hold more than {@link
 * #MAX_QUEUED} frames. {@link #stalledNanos()} says how long the frame being written has been
 * blocked, which is how a stalled guest is told from a slow one.
 */
final class FrameSender implements AutoCloseable {
  /** Frames waiting to be written, at most; more is refused at once. */
  static final int MAX_QUEUED = 256;

  @SuppressWarnings("ArrayRecordComponent") // private hand-over of encoded bytes, never compared
  private record Queued(byte[] bytes, CompletableFuture<Void> done) {}

  private final OutputStream out;
  private final String name;
  private final BlockingQueue<Queued> queue = new ArrayBlockingQueue<>(MAX_QUEUED);
  private final Consumer<IOException> onFailure;
  private final Thread thread;
  private volatile long writingSince; // System.nanoTime() when the current write began, 0 if idle
  private volatile @Nullable IOException failure;

  FrameSender(OutputStream out, String name, Consumer<IOException> onFailure) {
    this.out = out;
    this.name = name;
    this.onFailure = onFailure;
    this.thread = Threads.daemon(this::run, "agentvm-agent-writer " + name);
    this.thread.start();
  }

  /**
   * Queues a frame. The future completes when the frame was written, exceptionally if it could not
   * be; cancel it to drop the frame if it was not written yet.
   */
  CompletableFuture<Void> send(Frame frame) {
    CompletableFuture<Void> done = new CompletableFuture<>();
    if (frame.payload().length > FrameCodec.DEFAULT_MAX_PAYLOAD) {
      done.completeExceptionally(
          new ProtocolException(
              ErrorCode.FRAME_TOO_LARGE,
              "payload of "
                  + frame.payload().length
                  + " bytes exceeds the maximum of "
                  + FrameCodec.DEFAULT_MAX_PAYLOAD));
      return done;
    }
    IOException f = failure;
    if (f != null) {
      done.completeExceptionally(f);
      return done;
    }
    Queued q = new Queued(FrameCodec.encode(frame), done);
    if (!queue.offer(q)) {
      done.completeExceptionally(
          new AgentChannelClosedException(
              MAX_QUEUED + " frames are waiting to be written: the guest is not reading", null));
      return done;
    }
    IOException late = failure;
    if (late != null && queue.remove(q)) { // failed or closed while we queued: nobody writes it
      done.completeExceptionally(late);
    }
    return done;
  }

  /** How long the frame being written has been blocked; 0 when nothing is being written. */
  long stalledNanos() {
    long since = writingSince;
    return since == 0 ? 0 : System.nanoTime() - since;
  }

  private void run() {
    try {
      while (true) {
        Queued q = queue.take();
        if (q.done().isDone()) {
          continue; // cancelled by a caller whose deadline passed: never started, so skip it
        }
        writingSince = System.nanoTime();
        try {
          out.write(q.bytes());
          out.flush();
        } catch (IOException e) {
          // closed under us (close() interrupts a blocked write): report why it was closed;
          // else the write itself failed (a stream whose other end went away), which ends the
          // channel like a close: callers see one type for both
          IOException why = failure;
          if (why == null) {
            why =
                e instanceof AgentChannelClosedException
                    ? e
                    : new AgentChannelClosedException(
                        "writing to " + name + " failed: " + e.getMessage(), e);
          }
          q.done().completeExceptionally(why);
          fail(why);
          return;
        } finally {
          writingSince = 0;
        }
        q.done().complete(null);
      }
    } catch (InterruptedException e) {
      IOException why = failure;
      fail(why != null ? why : new AgentChannelClosedException("the writer was stopped", null));
    }
  }

  private void fail(IOException e) {
    failure = e;
    for (Queued q; (q = queue.poll()) != null; ) {
      q.done().completeExceptionally(e);
    }
    onFailure.accept(e);
  }

  /** Stops the writer; frames not yet written fail. Close the stream to unblock a write. */
  @Override
  public void close() {
    close(new AgentChannelClosedException("the channel is closed", null));
  }

  /** Stops the writer; frames not yet written (and one being written) fail with {@code why}. */
  void close(IOException why) {
    if (failure == null) {
      failure = why;
    }
    thread.interrupt();
    IOException f = failure;
    for (Queued q; (q = queue.poll()) != null; ) {
      q.done().completeExceptionally(f);
    }
  }
}
