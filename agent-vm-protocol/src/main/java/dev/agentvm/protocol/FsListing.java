package dev.agentvm.protocol;

import java.util.ArrayList;
import java.util.List;

/**
 * A LIST answer: a directory's entries, sorted by name, and whether there were more than fit.
 *
 * <p>Payload: u8 truncated (1 when entries were left out: over the request's limit, or over what
 * fits in one frame), i32 count, then count entries ({@link FsEntry} layout).
 *
 * @param entries at most the request's limit
 * @param truncated true when the directory has more entries than are listed
 */
public record FsListing(List<FsEntry> entries, boolean truncated) {
  public FsListing {
    entries = List.copyOf(entries);
  }

  public byte[] encode() {
    PayloadWriter w = new PayloadWriter().u8(truncated ? 1 : 0).i32(entries.size());
    entries.forEach(e -> e.writeTo(w));
    return w.toByteArray();
  }

  public static FsListing decode(byte[] payload, int limit) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    int truncated = r.u8();
    int count = r.i32();
    if (truncated > 1 || count < 0 || count > limit) {
      throw new ProtocolException(
          ErrorCode.MALFORMED_PAYLOAD,
          "listing of " + count + " entries (truncated " + truncated + ") for a limit of " + limit);
    }
    List<FsEntry> entries = new ArrayList<>(Math.min(count, 1024));
    for (int i = 0; i < count; i++) {
      entries.add(FsEntry.readFrom(r));
    }
    r.end();
    return new FsListing(entries, truncated == 1);
  }
}
