package dev.agentvm.network.egress;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The head of a request a guest sent to its egress proxy, parsed strictly: a {@code CONNECT
 * host:port} tunnel, or a plain-HTTP request in absolute form ({@code GET http://host/path}).
 * Anything else is refused with a status and a reason. The bytes are the guest's: every limit is
 * checked, nothing is guessed.
 *
 * @param method the request method
 * @param host the destination host as written (a name, an IPv4 literal, or an IPv6 literal without
 *     brackets)
 * @param port the destination port
 * @param target for plain HTTP the origin-form target ({@code /path?query}), for CONNECT empty
 * @param version {@code HTTP/1.0} or {@code HTTP/1.1}
 * @param headers the header fields in order, names as sent
 */
record ProxyRequest(
    String method,
    String host,
    int port,
    String target,
    String version,
    List<Map.Entry<String, String>> headers) {
  /** The largest request head accepted, through its blank line. */
  static final int MAX_HEAD = 16 * 1024;

  private static final Pattern TOKEN = Pattern.compile("[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}");
  private static final Pattern AUTHORITY =
      Pattern.compile("(\\[[0-9A-Fa-f:.]{2,45}\\]|[A-Za-z0-9._~%-]{1,255})(?::([0-9]{1,5}))?");
  private static final List<String> HOP_BY_HOP =
      List.of(
          "connection",
          "keep-alive",
          "proxy-connection",
          "proxy-authorization",
          "te",
          "trailer",
          "upgrade");

  /** A request the proxy refuses before deciding anything: answered with this status. */
  static final class Refused extends Exception {
    private static final long serialVersionUID = 1L;
    final int status;

    Refused(int status, String reason) {
      super(reason, null, false, false);
      this.status = status;
    }
  }

  boolean isConnect() {
    return method.equals("CONNECT");
  }

  /**
   * Where the head ends in {@code buf[0..len)}, looking from {@code from}: the index after its
   * blank line, or -1 while it has not ended.
   */
  static int headEnd(byte[] buf, int from, int len) {
    for (int i = from + 3; i < len; i++) {
      if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
        return i + 1;
      }
    }
    return -1;
  }

  /** Parses a head (its bytes through the blank line). */
  static ProxyRequest parse(byte[] head) throws Refused {
    if (head.length > MAX_HEAD) {
      throw new Refused(431, "the request head is larger than " + MAX_HEAD + " bytes");
    }
    String text = new String(head, StandardCharsets.ISO_8859_1);
    if (!text.endsWith("\r\n\r\n")) {
      throw new Refused(400, "the request head does not end with an empty line");
    }
    String[] lines = text.substring(0, text.length() - 4).split("\r\n", -1);
    String[] line = lines[0].split(" ", -1);
    if (line.length != 3) {
      throw new Refused(400, "the request line is not: method target version");
    }
    String method = line[0];
    String version = line[2];
    if (!TOKEN.matcher(method).matches()) {
      throw new Refused(400, "the method is not a token");
    }
    if (!line[1].chars().allMatch(ch -> ch > 0x20 && ch < 0x7f)) {
      throw new Refused(400, "the request target holds other than visible ASCII");
    }
    if (!version.equals("HTTP/1.1") && !version.equals("HTTP/1.0")) {
      throw new Refused(505, "only HTTP/1.0 and HTTP/1.1 are spoken");
    }
    List<Map.Entry<String, String>> headers = new ArrayList<>();
    for (int i = 1; i < lines.length; i++) {
      headers.add(header(lines[i]));
    }
    if (count(headers, "host") > 1) {
      throw new Refused(400, "more than one Host header");
    }
    if (count(headers, "transfer-encoding") > 0 && count(headers, "content-length") > 0) {
      throw new Refused(400, "both Transfer-Encoding and Content-Length");
    }
    if (count(headers, "content-length") > 1) {
      throw new Refused(400, "more than one Content-Length");
    }
    for (Map.Entry<String, String> h : headers) {
      if (h.getKey().equalsIgnoreCase("content-length") && !h.getValue().matches("[0-9]{1,15}")) {
        throw new Refused(400, "a Content-Length that is not a number");
      }
    }
    if (method.equals("CONNECT")) {
      Authority a = authority(line[1], -1);
      return new ProxyRequest(method, a.host, a.port, "", version, headers);
    }
    String t = line[1];
    if (t.length() < 7 || !t.substring(0, 7).equalsIgnoreCase("http://")) {
      throw new Refused(
          400,
          t.regionMatches(true, 0, "https://", 0, 8)
              ? "https:// through a proxy is a CONNECT tunnel, not a request"
              : "a proxy request names its target in absolute form: http://host/path");
    }
    int slash = firstOf(t, 7);
    Authority a = authority(t.substring(7, slash), 80);
    String path = slash == t.length() ? "/" : t.substring(slash);
    if (path.charAt(0) != '/') {
      path = "/" + path; // "http://host?q" has an empty path
    }
    if (path.indexOf('#') >= 0) {
      throw new Refused(400, "a fragment in the request target");
    }
    for (Map.Entry<String, String> h : headers) {
      if (h.getKey().equalsIgnoreCase("host")) {
        Authority named = authority(h.getValue(), 80);
        if (!named.host.equalsIgnoreCase(a.host) || named.port != a.port) {
          throw new Refused(403, "the Host header names another server than the request");
        }
      }
    }
    return new ProxyRequest(method, a.host, a.port, path, version, headers);
  }

  /**
   * The length of the request's body: its Content-Length, 0 without one, -1 when it has a
   * Transfer-Encoding (a chunked body, whose end only a parser of chunks would find).
   */
  long contentLength() {
    long n = 0;
    for (Map.Entry<String, String> h : headers) {
      if (h.getKey().equalsIgnoreCase("transfer-encoding")) {
        return -1;
      }
      if (h.getKey().equalsIgnoreCase("content-length")) {
        n = Long.parseLong(h.getValue());
      }
    }
    return n;
  }

  /**
   * The head to send to the server for a plain-HTTP request: origin form, the proxy's own headers
   * and hop-by-hop ones dropped, one request per connection ({@code Connection: close}).
   */
  byte[] originHead() {
    List<String> named = new ArrayList<>();
    for (Map.Entry<String, String> h : headers) {
      if (h.getKey().equalsIgnoreCase("connection")) {
        for (String n : h.getValue().split(",", -1)) {
          named.add(n.trim().toLowerCase(Locale.ROOT));
        }
      }
    }
    StringBuilder b = new StringBuilder();
    b.append(method).append(' ').append(target).append(' ').append(version).append("\r\n");
    boolean hostSeen = false;
    for (Map.Entry<String, String> h : headers) {
      String n = h.getKey().toLowerCase(Locale.ROOT);
      if (HOP_BY_HOP.contains(n) || named.contains(n)) {
        continue;
      }
      hostSeen |= n.equals("host");
      b.append(h.getKey()).append(": ").append(h.getValue()).append("\r\n");
    }
    if (!hostSeen) {
      String h = host.indexOf(':') >= 0 ? "[" + host + "]" : host;
      b.append("Host: ").append(port == 80 ? h : h + ":" + port).append("\r\n");
    }
    b.append("Connection: close\r\n\r\n");
    return b.toString().getBytes(StandardCharsets.ISO_8859_1);
  }

  private record Authority(String host, int port) {}

  private static Authority authority(String s, int defaultPort) throws Refused {
    Matcher m = AUTHORITY.matcher(s);
    if (!m.matches()) {
      throw new Refused(400, "the destination is not host:port");
    }
    String host = m.group(1);
    if (host.startsWith("[")) {
      host = host.substring(1, host.length() - 1);
    }
    String p = m.group(2);
    if (p == null) {
      if (defaultPort < 0) {
        throw new Refused(400, "CONNECT names no port");
      }
      return new Authority(host, defaultPort);
    }
    int port = Integer.parseInt(p);
    if (port < 1 || port > 65535) {
      throw new Refused(400, "port " + port + " is out of range");
    }
    return new Authority(host, port);
  }

  private static Map.Entry<String, String> header(String line) throws Refused {
    int colon = line.indexOf(':');
    if (colon <= 0) {
      throw new Refused(400, "a header line without a name");
    }
    String name = line.substring(0, colon);
    if (!TOKEN.matcher(name).matches()) {
      throw new Refused(400, "a header name is not a token (folded lines are not accepted)");
    }
    String value = line.substring(colon + 1).strip();
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        throw new Refused(400, "a control character in header " + name);
      }
    }
    return Map.entry(name, value);
  }

  private static long count(List<Map.Entry<String, String>> headers, String name) {
    return headers.stream().filter(h -> h.getKey().equalsIgnoreCase(name)).count();
  }

  private static int firstOf(String t, int from) {
    for (int i = from; i < t.length(); i++) {
      char c = t.charAt(i);
      if (c == '/' || c == '?' || c == '#') {
        return i;
      }
    }
    return t.length();
  }
}
