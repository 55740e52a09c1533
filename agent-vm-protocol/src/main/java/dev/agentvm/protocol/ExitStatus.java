package dev.agentvm.protocol;

/**
 * How an EXEC ended.
 *
 * @param exitCode the process's exit code; for a process ended by a signal, 128 + the signal
 * @param signal the signal that ended it, or 0
 * @param durationMillis wall time in the guest from start to end
 * @param timedOut the run time limit was reached and the command's process group was stopped
 * @param killed a KILL request stopped it
 * @param stdoutTruncated standard output exceeded the limit; the rest was dropped
 * @param stderrTruncated standard error exceeded the limit; the rest was dropped
 */
public record ExitStatus(
    int exitCode,
    int signal,
    long durationMillis,
    boolean timedOut,
    boolean killed,
    boolean stdoutTruncated,
    boolean stderrTruncated) {

  public byte[] encode() {
    int flags =
        (timedOut ? 1 : 0)
            | (killed ? 2 : 0)
            | (stdoutTruncated ? 4 : 0)
            | (stderrTruncated ? 8 : 0);
    return new PayloadWriter()
        .i32(exitCode)
        .i32(signal)
        .i64(durationMillis)
        .u8(flags)
        .toByteArray();
  }

  public static ExitStatus decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int code = r.i32();
    int signal = r.i32();
    long duration = r.i64();
    int f = r.u8();
    r.end();
    return new ExitStatus(
        code, signal, duration, (f & 1) != 0, (f & 2) != 0, (f & 4) != 0, (f & 8) != 0);
  }
}
