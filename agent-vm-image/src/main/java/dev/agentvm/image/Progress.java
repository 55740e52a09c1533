package dev.agentvm.image;

import java.util.Objects;
import java.util.function.Consumer;

/**
 * Progress of long work (image builds, package disks, pool warm-up, warm-image capture): each step
 * names its task, how far it is ({@code done} of {@code total} units; total 0 when unknown) and
 * what it does now. The default, {@link #toLog()}, writes INFO lines through slf4j; a command line
 * draws a bar from the same steps. Implementations must return quickly; one that throws is ignored.
 */
@FunctionalInterface
public interface Progress {
  /** Hears one step. */
  void step(Step step);

  /**
   * One step of a task.
   *
   * @param task what the work is ("micro image", "package disk", "pool default", ...)
   * @param done units finished, at most {@code total} when that is known
   * @param total units in all, 0 when not known
   * @param detail what is happening now, or what was just done
   */
  record Step(String task, long done, long total, String detail) {
    public Step {
      Objects.requireNonNull(task, "task");
      Objects.requireNonNull(detail, "detail");
      if (done < 0 || total < 0) {
        throw new IllegalArgumentException("done and total must not be negative");
      }
    }

    /** Whether the task is complete ({@code done == total}, total known). */
    public boolean finished() {
      return total > 0 && done >= total;
    }

    /** {@code task: detail (done/total)}, or without the count when the total is not known. */
    @Override
    public String toString() {
      return task + ": " + detail + (total > 0 ? " (" + done + "/" + total + ")" : "");
    }
  }

  /** INFO lines through slf4j (logger {@code dev.agentvm.image.Progress}): the default. */
  static Progress toLog() {
    return ProgressLog.INSTANCE;
  }

  /** Nothing. */
  static Progress none() {
    return s -> {};
  }

  /** Each step as a line (see {@link Step#toString()}), for example to standard error. */
  static Progress lines(Consumer<String> sink) {
    Objects.requireNonNull(sink, "sink");
    return s -> sink.accept(s.toString());
  }

  /**
   * Hands {@code step} to {@code p}, ignoring what it throws: a listener never breaks the work it
   * watches.
   */
  static void report(Progress p, Step step) {
    try {
      p.step(step);
    } catch (RuntimeException e) {
      ProgressLog.LOG.debug("progress listener threw: {}", e.toString());
    }
  }
}
