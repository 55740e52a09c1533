package dev.agentvm.network.egress;

import java.nio.charset.StandardCharsets;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * Reads the server name (SNI, RFC 6066) from the first bytes a TLS client sends: the host checks it
 * against the name the guest's CONNECT asked for. Everything is bounds-checked; the bytes are the
 * guest's and may be anything.
 */
public final class ClientHello {
  /** The most bytes a first TLS record can take: its header and 2^14 + 2048 bytes. */
  public static final int MAX_RECORD = 5 + 16384 + 2048;

  private static final int HANDSHAKE = 22;
  private static final int CLIENT_HELLO = 1;
  private static final int SERVER_NAME = 0;
  private static final int HOST_NAME = 0;

  private ClientHello() {}

  /** What the first bytes are. */
  public enum Status {
    /** Too few bytes yet: read more (at most {@link #MAX_RECORD}) and ask again. */
    INCOMPLETE,
    /** Not a TLS handshake record. */
    NOT_TLS,
    /** A TLS ClientHello that breaks its own format. */
    MALFORMED,
    /** A well-formed ClientHello without a server name. */
    NO_SERVER_NAME,
    /** A well-formed ClientHello naming a server. */
    SERVER_NAME
  }

  /**
   * The outcome of {@link #parse}.
   *
   * @param status what the bytes are
   * @param serverName the server name, with {@link Status#SERVER_NAME}; else null
   * @param detail why, for MALFORMED and NOT_TLS
   */
  public record Parsed(Status status, @Nullable String serverName, String detail) {
    public Parsed {
      Objects.requireNonNull(status, "status");
      Objects.requireNonNull(detail, "detail");
      if ((status == Status.SERVER_NAME) != (serverName != null)) {
        throw new IllegalArgumentException("a server name goes with SERVER_NAME only");
      }
    }

    static Parsed of(Status s, String detail) {
      return new Parsed(s, null, detail);
    }
  }

  /** Signals a format error at the point it was found. */
  private static final class Malformed extends Exception {
    private static final long serialVersionUID = 1L;

    Malformed(String what) {
      super(what, null, false, false);
    }
  }

  /** Parses the first {@code len} bytes of {@code buf}, the start of what the client sent. */
  public static Parsed parse(byte[] buf, int len) {
    Objects.checkFromIndexSize(0, len, buf.length);
    if (len < 5) {
      return len > 0 && (buf[0] & 0xff) != HANDSHAKE
          ? Parsed.of(Status.NOT_TLS, "first byte " + (buf[0] & 0xff) + ", not a handshake record")
          : Parsed.of(Status.INCOMPLETE, "");
    }
    if ((buf[0] & 0xff) != HANDSHAKE || (buf[1] & 0xff) != 3 || (buf[2] & 0xff) > 4) {
      return Parsed.of(Status.NOT_TLS, "not a TLS handshake record");
    }
    int recordLength = u16(buf, 3);
    if (recordLength < 4 || 5 + recordLength > MAX_RECORD) {
      return Parsed.of(Status.MALFORMED, "record length " + recordLength);
    }
    if (len < 5 + recordLength) {
      return Parsed.of(Status.INCOMPLETE, "");
    }
    try {
      return clientHello(new Reader(buf, 5, 5 + recordLength));
    } catch (Malformed m) {
      return Parsed.of(Status.MALFORMED, String.valueOf(m.getMessage()));
    }
  }

  private static Parsed clientHello(Reader r) throws Malformed {
    if (r.u8() != CLIENT_HELLO) {
      throw new Malformed("the first handshake message is not a ClientHello");
    }
    int length = r.u24();
    if (length > r.remaining()) {
      throw new Malformed("a ClientHello longer than its record (split over records)");
    }
    Reader hello = r.sub(length);
    hello.skip(2 + 32); // version, random
    hello.skip(hello.u8(32)); // session id
    int suites = hello.u16();
    if (suites < 2 || suites % 2 != 0) {
      throw new Malformed("cipher suites of " + suites + " bytes");
    }
    hello.skip(suites);
    int compressions = hello.u8();
    if (compressions < 1) {
      throw new Malformed("no compression methods");
    }
    hello.skip(compressions);
    if (hello.remaining() == 0) {
      return Parsed.of(Status.NO_SERVER_NAME, "no extensions");
    }
    Reader extensions = hello.sub(hello.u16());
    if (hello.remaining() != 0) {
      throw new Malformed("bytes after the extensions");
    }
    String name = null;
    while (extensions.remaining() > 0) {
      int type = extensions.u16();
      Reader data = extensions.sub(extensions.u16());
      if (type == SERVER_NAME) {
        if (name != null) {
          throw new Malformed("two server_name extensions");
        }
        name = serverName(data);
      }
    }
    return name == null
        ? Parsed.of(Status.NO_SERVER_NAME, "no server_name extension")
        : new Parsed(Status.SERVER_NAME, name, "");
  }

  private static String serverName(Reader data) throws Malformed {
    Reader list = data.sub(data.u16());
    if (data.remaining() != 0) {
      throw new Malformed("bytes after the server name list");
    }
    String host = null;
    while (list.remaining() > 0) {
      int type = list.u8();
      int n = list.u16();
      byte[] raw = list.bytes(n);
      if (type != HOST_NAME) {
        continue; // a name type this reader does not know: RFC 6066 lets a server ignore it
      }
      if (host != null) {
        throw new Malformed("two host names");
      }
      if (n == 0 || n > 255) {
        throw new Malformed("a host name of " + n + " bytes");
      }
      for (byte b : raw) {
        if (b < 0x21 || b > 0x7e) {
          throw new Malformed("a host name with a byte outside printable ASCII");
        }
      }
      host = new String(raw, StandardCharsets.US_ASCII);
    }
    if (host == null) {
      throw new Malformed("a server_name extension without a host name");
    }
    return host;
  }

  private static int u16(byte[] b, int at) {
    return ((b[at] & 0xff) << 8) | (b[at + 1] & 0xff);
  }

  /** A bounded view of the bytes: every read checks the end first. */
  private static final class Reader {
    private final byte[] b;
    private int at;
    private final int end;

    Reader(byte[] b, int at, int end) {
      this.b = b;
      this.at = at;
      this.end = end;
    }

    int remaining() {
      return end - at;
    }

    private void need(int n) throws Malformed {
      if (n < 0 || n > end - at) {
        throw new Malformed("truncated: " + n + " bytes wanted, " + (end - at) + " left");
      }
    }

    int u8() throws Malformed {
      need(1);
      return b[at++] & 0xff;
    }

    /** A length byte that may not exceed {@code max}. */
    int u8(int max) throws Malformed {
      int v = u8();
      if (v > max) {
        throw new Malformed("a length of " + v + " where at most " + max + " fits");
      }
      return v;
    }

    int u16() throws Malformed {
      need(2);
      int v = ClientHello.u16(b, at);
      at += 2;
      return v;
    }

    int u24() throws Malformed {
      need(3);
      int v = ((b[at] & 0xff) << 16) | ((b[at + 1] & 0xff) << 8) | (b[at + 2] & 0xff);
      at += 3;
      return v;
    }

    void skip(int n) throws Malformed {
      need(n);
      at += n;
    }

    byte[] bytes(int n) throws Malformed {
      need(n);
      byte[] out = java.util.Arrays.copyOfRange(b, at, at + n);
      at += n;
      return out;
    }

    Reader sub(int n) throws Malformed {
      need(n);
      Reader r = new Reader(b, at, at + n);
      at += n;
      return r;
    }
  }
}
