package dev.agentvm.cli;

import dev.agentvm.image.Progress;
import java.io.PrintWriter;

/**
 * Draws progress steps for an operator: on a terminal one line redrawn in place, {@code [####....]
 * 3/5 micro image: jlink java.base}; otherwise a line per step (logs, pipes).
 */
final class ProgressBar implements Progress {
  static final int WIDTH = 24;
  static final int DETAIL = 60;

  private final PrintWriter out;
  private final boolean terminal;
  private boolean open; // a bar drawn without its newline yet

  ProgressBar(PrintWriter out, boolean terminal) {
    this.out = out;
    this.terminal = terminal;
  }

  @Override
  public synchronized void step(Step s) {
    if (!terminal) {
      out.println(s);
      out.flush();
      return;
    }
    out.print("\r" + render(s) + "\u001b[K"); // and clear what a longer line left
    open = true;
    if (s.finished()) {
      out.println();
      open = false;
    }
    out.flush();
  }

  /** Ends a bar left open (the work failed before its last step). */
  synchronized void end() {
    if (open) {
      out.println();
      out.flush();
      open = false;
    }
  }

  /** Whether standard error is a terminal (Linux: where {@code /proc/self/fd/2} leads). */
  static boolean stderrIsTerminal() {
    try {
      String target =
          java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/fd/2")).toString();
      return target.startsWith("/dev/pts/") || target.startsWith("/dev/tty");
    } catch (java.io.IOException | RuntimeException e) {
      return false;
    }
  }

  /** The bar for one step; a step with no known total shows its detail only. */
  static String render(Step s) {
    String detail = s.detail().replaceAll("\\p{Cntrl}", "?");
    if (detail.length() > DETAIL) {
      detail = detail.substring(0, DETAIL - 3) + "...";
    }
    if (s.total() == 0) {
      return s.task() + ": " + detail;
    }
    int filled = (int) Math.min(WIDTH, s.done() * WIDTH / s.total());
    return "["
        + "#".repeat(filled)
        + ".".repeat(WIDTH - filled)
        + "] "
        + s.done()
        + "/"
        + s.total()
        + " "
        + s.task()
        + ": "
        + detail;
  }
}
