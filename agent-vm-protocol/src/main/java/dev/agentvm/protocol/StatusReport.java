package dev.agentvm.protocol;

/**
 * Guest health numbers answering STATUS.
 *
 * @param uptimeMillis guest uptime
 * @param memTotalKiB total memory
 * @param memAvailableKiB memory available for new work
 * @param load1 1-minute load average
 * @param processCount processes in the guest
 * @param runningExecs commands the agent is running
 */
public record StatusReport(
    long uptimeMillis,
    long memTotalKiB,
    long memAvailableKiB,
    double load1,
    int processCount,
    int runningExecs) {
  public byte[] encode() {
    return new PayloadWriter()
        .i64(uptimeMillis)
        .i64(memTotalKiB)
        .i64(memAvailableKiB)
        .i64(Double.doubleToLongBits(load1))
        .i32(processCount)
        .i32(runningExecs)
        .toByteArray();
  }

  public static StatusReport decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    StatusReport s =
        new StatusReport(
            r.i64(), r.i64(), r.i64(), Double.longBitsToDouble(r.i64()), r.i32(), r.i32());
    r.end();
    return s;
  }
}
