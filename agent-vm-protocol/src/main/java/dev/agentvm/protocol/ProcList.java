package dev.agentvm.protocol;

import java.util.ArrayList;
import java.util.List;

/**
 * A PROC LIST answer: the background processes the agent knows, oldest first.
 *
 * <p>Payload: i32 count, then per process: i32 handle, u8 running (1 or 0), i32 exit code (0 while
 * running), string command (argv[0]).
 *
 * @param processes at most {@link #MAX} entries
 */
public record ProcList(List<Entry> processes) {
  /** The most background processes an agent keeps (running and finished but not yet collected). */
  public static final int MAX = 256;

  /**
   * One background process.
   *
   * @param handle its handle
   * @param running whether it still runs
   * @param exitCode its exit code once it ended (0 while running)
   * @param command its argv[0]
   */
  public record Entry(int handle, boolean running, int exitCode, String command) {}

  public ProcList {
    processes = List.copyOf(processes);
  }

  public byte[] encode() {
    PayloadWriter w = new PayloadWriter().i32(processes.size());
    for (Entry e : processes) {
      w.i32(e.handle()).u8(e.running() ? 1 : 0).i32(e.exitCode()).string(e.command());
    }
    return w.toByteArray();
  }

  public static ProcList decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int n = r.i32();
    if (n < 0 || n > MAX) {
      throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "a list of " + n + " processes");
    }
    List<Entry> l = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      int handle = r.i32();
      int running = r.u8();
      if (running > 1) {
        throw new ProtocolException(ErrorCode.MALFORMED_PAYLOAD, "running flag " + running);
      }
      l.add(new Entry(handle, running == 1, r.i32(), r.string()));
    }
    r.end();
    return new ProcList(l);
  }
}
