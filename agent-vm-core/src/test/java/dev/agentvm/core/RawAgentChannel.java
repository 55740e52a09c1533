package dev.agentvm.core;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;

/**
 * A host-side peer of the guest agent written from docs/protocol.md alone, for the conformance and
 * fuzzing tests: its own CRC32, its own frame encoder and parser, its own payload fields. It uses
 * nothing of agent-vm-protocol, so it checks the guest against the document, not against the
 * library the guest is built from.
 */
final class RawAgentChannel implements AutoCloseable {
  static final int MAGIC = 0x41564d50;
  static final int RESPONSE = 0x0001;
  static final int END = 0x0002;

  /** A frame as the document lays it out, with the bytes it arrived as. */
  @SuppressWarnings("ArrayRecordComponent") // test data, compared by the tests field by field
  record RawFrame(int type, int flags, int id, byte[] payload, byte[] bytes) {
    @Override
    public String toString() {
      return String.format(
          "frame{type=0x%02x flags=0x%04x id=%d payload=%d bytes}",
          type, flags, id, payload.length);
    }
  }

  private final SocketChannel channel;
  private final BlockingQueue<RawFrame> frames = new LinkedBlockingQueue<>();
  private final AtomicLong skippedBytes = new AtomicLong();
  private final Thread reader;

  private RawAgentChannel(SocketChannel channel) {
    this.channel = channel;
    this.reader = new Thread(this::readLoop, "raw-agent-reader");
    reader.setDaemon(true);
    reader.start();
  }

  /**
   * Connects to the agent's UNIX socket, retrying until {@code deadline}: the port serves one
   * connection at a time and a closing one may hold it briefly.
   */
  static RawAgentChannel open(Path socket, Duration deadline) throws IOException {
    return new RawAgentChannel(connect(socket, deadline));
  }

  /** A connected socket with nobody reading it (for the stalled-reader tests). */
  static SocketChannel connect(Path socket, Duration deadline) throws IOException {
    long end = System.nanoTime() + deadline.toNanos();
    while (true) {
      SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
      try {
        ch.connect(UnixDomainSocketAddress.of(socket));
        return ch;
      } catch (IOException e) {
        ch.close();
        if (System.nanoTime() > end) {
          throw e;
        }
        sleep(50);
      }
    }
  }

  void send(byte[]... parts) throws IOException {
    for (byte[] p : parts) {
      ByteBuffer b = ByteBuffer.wrap(p);
      while (b.hasRemaining()) {
        channel.write(b);
      }
    }
  }

  /** The next frame from the guest, or null if none came within {@code timeout}. */
  @Nullable RawFrame poll(Duration timeout) throws InterruptedException {
    return frames.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
  }

  /** The next frame from the guest; fails if none came within {@code timeout}. */
  RawFrame next(Duration timeout) throws InterruptedException {
    RawFrame f = poll(timeout);
    if (f == null) {
      throw new AssertionError("no frame from the guest within " + timeout.toMillis() + " ms");
    }
    return f;
  }

  /**
   * The next frame with this request id, skipping others (answers to an earlier connection's
   * requests may arrive first: the document says to ignore them).
   */
  RawFrame nextFor(int id, Duration timeout) throws InterruptedException {
    long end = System.nanoTime() + timeout.toNanos();
    while (true) {
      long left = end - System.nanoTime();
      RawFrame f = left > 0 ? poll(Duration.ofNanos(left)) : null;
      if (f == null) {
        throw new AssertionError(
            "no frame with id " + id + " from the guest within " + timeout.toMillis() + " ms");
      }
      if (f.id() == id) {
        return f;
      }
    }
  }

  /** Bytes from the guest that were not part of a valid frame (a frame cut by a reconnect). */
  long skippedBytes() {
    return skippedBytes.get();
  }

  @Override
  public void close() throws IOException {
    channel.close();
    try {
      reader.join(2000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void readLoop() {
    ByteArrayOutputStream acc = new ByteArrayOutputStream();
    ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
    try {
      while (channel.read(buf) >= 0) {
        buf.flip();
        acc.write(buf.array(), 0, buf.limit());
        buf.clear();
        byte[] b = acc.toByteArray();
        int pos = parse(b);
        acc.reset();
        acc.write(b, pos, b.length - pos);
      }
    } catch (IOException e) {
      // closed by the test
    }
  }

  /** Takes every complete frame off the front of {@code b}; returns how much it consumed. */
  private int parse(byte[] b) {
    int pos = 0;
    while (b.length - pos >= 24) {
      if (getInt(b, pos) != MAGIC
          || crc32(b, pos, 16) != getInt(b, pos + 16)
          || b[pos + 4] != 1
          || (getInt(b, pos + 12) & 0xFFFFFFFFL) > (1 << 20)) {
        pos++; // the document's rule: a rejected header gives up one byte
        skippedBytes.incrementAndGet();
        continue;
      }
      int n = getInt(b, pos + 12);
      if (b.length - pos < 24 + n) {
        break; // wait for the rest
      }
      if (crc32(b, pos, 20 + n) != getInt(b, pos + 20 + n)) {
        pos += 24 + n;
        skippedBytes.addAndGet(24 + n);
        continue;
      }
      byte[] whole = Arrays.copyOfRange(b, pos, pos + 24 + n);
      frames.add(
          new RawFrame(
              b[pos + 5] & 0xFF,
              (b[pos + 6] & 0xFF) << 8 | (b[pos + 7] & 0xFF),
              getInt(b, pos + 8),
              Arrays.copyOfRange(whole, 20, 20 + n),
              whole));
      pos += 24 + n;
    }
    return pos;
  }

  // ---- the document's frame layout, by hand ----

  private static final int[] CRC_TABLE = new int[256];

  static {
    for (int i = 0; i < 256; i++) {
      int c = i;
      for (int k = 0; k < 8; k++) {
        c = (c & 1) != 0 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
      }
      CRC_TABLE[i] = c;
    }
  }

  /** CRC32 (IEEE 802.3, reflected, init and final XOR 0xFFFFFFFF), as the document defines it. */
  static int crc32(byte[] b, int off, int len) {
    int c = 0xFFFFFFFF;
    for (int i = off; i < off + len; i++) {
      c = CRC_TABLE[(c ^ b[i]) & 0xFF] ^ (c >>> 8);
    }
    return ~c;
  }

  /** Encodes a frame: header, header CRC, payload, frame CRC. */
  static byte[] frame(int type, int flags, int id, byte[] payload) {
    return frameWithLength(type, flags, id, payload, payload.length);
  }

  /** A frame whose length field says {@code length} (CRCs made to match what is written). */
  static byte[] frameWithLength(int type, int flags, int id, byte[] payload, long length) {
    byte[] f = new byte[24 + payload.length];
    putInt(f, 0, MAGIC);
    f[4] = 1;
    f[5] = (byte) type;
    f[6] = (byte) (flags >>> 8);
    f[7] = (byte) flags;
    putInt(f, 8, id);
    putInt(f, 12, (int) length);
    putInt(f, 16, crc32(f, 0, 16));
    System.arraycopy(payload, 0, f, 20, payload.length);
    putInt(f, 20 + payload.length, crc32(f, 0, 20 + payload.length));
    return f;
  }

  static void putInt(byte[] b, int off, int v) {
    b[off] = (byte) (v >>> 24);
    b[off + 1] = (byte) (v >>> 16);
    b[off + 2] = (byte) (v >>> 8);
    b[off + 3] = (byte) v;
  }

  static int getInt(byte[] b, int off) {
    return (b[off] & 0xFF) << 24
        | (b[off + 1] & 0xFF) << 16
        | (b[off + 2] & 0xFF) << 8
        | (b[off + 3] & 0xFF);
  }

  /** Payload fields as the document's "payload encoding" table gives them. */
  static final class Fields {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    Fields u8(int v) {
      out.write(v);
      return this;
    }

    Fields u16(int v) {
      out.write(v >>> 8);
      out.write(v);
      return this;
    }

    Fields i32(int v) {
      out.write(v >>> 24);
      out.write(v >>> 16);
      out.write(v >>> 8);
      out.write(v);
      return this;
    }

    Fields i64(long v) {
      i32((int) (v >>> 32));
      return i32((int) v);
    }

    Fields raw(byte[] b) {
      out.write(b, 0, b.length);
      return this;
    }

    Fields bytes(byte[] b) {
      i32(b.length);
      return raw(b);
    }

    Fields string(String s) {
      return bytes(s.getBytes(StandardCharsets.UTF_8));
    }

    byte[] toBytes() {
      return out.toByteArray();
    }
  }

  /** Reads payload fields; fails the test on a short payload. */
  static final class Reader {
    private final byte[] b;
    private int pos;

    Reader(byte[] b) {
      this.b = b;
    }

    int u8() {
      return b[pos++] & 0xFF;
    }

    int u16() {
      int v = (b[pos] & 0xFF) << 8 | (b[pos + 1] & 0xFF);
      pos += 2;
      return v;
    }

    int i32() {
      int v = getInt(b, pos);
      pos += 4;
      return v;
    }

    long i64() {
      long hi = i32() & 0xFFFFFFFFL;
      return hi << 32 | (i32() & 0xFFFFFFFFL);
    }

    String string() {
      int n = i32();
      String s = new String(b, pos, n, StandardCharsets.UTF_8);
      pos += n;
      return s;
    }

    boolean atEnd() {
      return pos == b.length;
    }
  }

  /** An EXEC payload (ExecSpec) with no script, environment, cwd or stdin. */
  static byte[] execPayload(long outputLimit, String... argv) {
    Fields f = new Fields().u16(argv.length);
    for (String a : argv) {
      f.string(a);
    }
    return f.string("")
        .u16(0)
        .string("")
        .bytes(new byte[0])
        .i64(30_000)
        .i64(outputLimit)
        .i64(500)
        .toBytes();
  }

  /** A HELLO payload for protocol version 1. */
  static byte[] helloPayload(String software) {
    return new Fields().u16(1).u16(1).string(software).toBytes();
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
