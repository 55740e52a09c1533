package dev.agentvm.network.egress;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Rewrites the first HTTP/1.x request head of a terminated TLS connection to a bound domain. The
 * value goes only into the headers its secret names ({@code Authorization}, its own header, those
 * given with {@link EgressSecret#inHeader}), never into the request line or any other header (a
 * server may echo those back); only when the request is for the connection's own host (a {@code
 * Host} naming another site behind the same server would carry the value there); and only into the
 * first request, which asks the server to close after it: nothing the guest sends later can frame
 * itself around a request that carries the value.
 */
final class SecretHeads {
  private static final Pattern DIGITS = Pattern.compile("[0-9]{1,18}");

  /** Headers the guest may not send to a bound server: they steer routing or get echoed. */
  private static final Set<String> DROPPED =
      Set.of("forwarded", "x-original-url", "x-rewrite-url", "x-http-method-override");

  private SecretHeads() {}

  /** A refused head: the guest's request cannot go on. */
  static final class Refused extends Exception {
    private static final long serialVersionUID = 1L;
    final int status;

    Refused(int status, String why) {
      super(why);
      this.status = status;
    }
  }

  /**
   * Rewrites {@code head} (through its blank line) for {@code host}:{@code port} with {@code
   * secrets} (all bound to host, all with values).
   */
  static byte[] rewrite(byte[] head, String host, int port, List<EgressSecret> secrets)
      throws Refused {
    String text = new String(head, StandardCharsets.ISO_8859_1);
    if (!text.endsWith("\r\n\r\n")) {
      throw new Refused(400, "the request head does not end with an empty line");
    }
    String[] lines = text.substring(0, text.length() - 4).split("\r\n", -1);
    String requestLine = lines[0];
    String[] parts = requestLine.split(" ", -1);
    if (parts.length != 3
        || parts[0].isEmpty()
        || !visible(parts[0])
        || !visible(parts[1])
        || !(parts[2].equals("HTTP/1.1") || parts[2].equals("HTTP/1.0"))) {
      throw new Refused(400, "not an HTTP/1.1 request line");
    }
    String method = parts[0].toUpperCase(Locale.ROOT);
    if (method.equals("TRACE") || method.equals("TRACK") || method.equals("CONNECT")) {
      throw new Refused(405, parts[0] + " is not forwarded to a domain a secret is bound to");
    }
    String target = parts[1];
    if (!target.startsWith("/") && !target.equals("*")) {
      if (!sameSite(absoluteAuthority(target), host, port)) {
        throw new Refused(421, "the request names another site than the tunnel's " + host);
      }
    }
    List<String> out = new ArrayList<>();
    out.add(requestLine);
    String hostHeader = null;
    String length = null;
    boolean chunked = false;
    boolean upgrade = false;
    for (int i = 1; i < lines.length; i++) {
      String line = lines[i];
      int colon = line.indexOf(':');
      if (colon <= 0) {
        throw new Refused(400, "a malformed header line");
      }
      String name = line.substring(0, colon);
      if (!visible(name)) {
        throw new Refused(400, "a malformed header name");
      }
      String raw = line.substring(colon + 1);
      if (raw.chars().anyMatch(c -> (c < 0x20 && c != '\t') || c == 0x7f)) {
        throw new Refused(400, "a control character in a header");
      }
      String value = trimSpaces(raw);
      String lower = name.toLowerCase(Locale.ROOT);
      if (DROPPED.contains(lower) || lower.startsWith("x-forwarded-")) {
        continue;
      }
      switch (lower) {
        case "host" -> {
          if (hostHeader != null) {
            throw new Refused(400, "more than one Host header");
          }
          hostHeader = value;
          out.add("Host: " + value); // never substituted
          continue;
        }
        case "content-length" -> {
          if (!DIGITS.matcher(value).matches() || (length != null && !length.equals(value))) {
            throw new Refused(400, "an invalid Content-Length");
          }
          length = value;
        }
        case "transfer-encoding" -> chunked = true;
        case "upgrade" -> upgrade = true;
        case "connection", "keep-alive" -> {
          continue; // set below
        }
        default -> {}
      }
      if (setByHost(lower, secrets)) {
        continue;
      }
      out.add(name + ": " + substitute(lower, value, secrets));
    }
    if (hostHeader == null) {
      throw new Refused(400, "a request without a Host header");
    }
    if (!sameSite(hostHeader, host, port)) {
      throw new Refused(421, "the Host header names another site than the tunnel's " + host);
    }
    if (chunked && length != null) {
      throw new Refused(400, "both Content-Length and Transfer-Encoding");
    }
    for (EgressSecret s : secrets) {
      String h = s.headerName().orElse(null);
      String t = s.headerTemplate().orElse(null);
      String v = s.value();
      if (h != null && t != null && v != null) {
        out.add(h + ": " + t.replace(EgressSecret.VALUE, v));
      }
    }
    // the server closes after this request; an upgrade (a WebSocket) is one request anyway
    out.add(upgrade ? "Connection: Upgrade" : "Connection: close");
    StringBuilder sb = new StringBuilder();
    for (String l : out) {
      sb.append(l).append("\r\n");
    }
    sb.append("\r\n");
    return sb.toString().getBytes(StandardCharsets.ISO_8859_1);
  }

  /** Printable ASCII without spaces: a method, a target, a header name. */
  private static boolean visible(String s) {
    return !s.isEmpty() && s.chars().allMatch(c -> c > 0x20 && c < 0x7f);
  }

  private static String trimSpaces(String s) {
    int from = 0;
    int to = s.length();
    while (from < to && (s.charAt(from) == ' ' || s.charAt(from) == '\t')) {
      from++;
    }
    while (to > from && (s.charAt(to - 1) == ' ' || s.charAt(to - 1) == '\t')) {
      to--;
    }
    return s.substring(from, to);
  }

  /** A header the host sets for a secret: the guest's own of that name is dropped. */
  private static boolean setByHost(String lowerName, List<EgressSecret> secrets) {
    for (EgressSecret s : secrets) {
      if (s.headerTemplate().isPresent()
          && s.headerName().map(h -> h.toLowerCase(Locale.ROOT).equals(lowerName)).orElse(false)) {
        return true;
      }
    }
    return false;
  }

  private static String substitute(String lowerName, String value, List<EgressSecret> secrets) {
    String v = value;
    for (EgressSecret s : secrets) {
      String real = s.value();
      if (real != null && s.substitutesIn(lowerName) && v.contains(s.placeholder())) {
        v = v.replace(s.placeholder(), real);
      }
    }
    return v;
  }

  /** The authority of an absolute-form target ({@code https://host:port/path}). */
  private static String absoluteAuthority(String target) throws Refused {
    int scheme = target.indexOf("://");
    if (scheme <= 0) {
      throw new Refused(400, "an invalid request target");
    }
    int end = target.indexOf('/', scheme + 3);
    String authority = end < 0 ? target.substring(scheme + 3) : target.substring(scheme + 3, end);
    if (authority.contains("@") || authority.contains("?") || authority.contains("#")) {
      throw new Refused(400, "an invalid authority in the request target");
    }
    return authority;
  }

  /** Whether a Host value ({@code name} or {@code name:port}) is the tunnel's host and port. */
  static boolean sameSite(String authority, String host, int port) {
    String a = authority.toLowerCase(Locale.ROOT);
    String name = a;
    int colon = a.lastIndexOf(':');
    if (colon >= 0 && a.indexOf(']') < colon) {
      name = a.substring(0, colon);
      String p = a.substring(colon + 1);
      if (!p.equals(Integer.toString(port))) {
        return false;
      }
    }
    if (name.endsWith(".")) {
      name = name.substring(0, name.length() - 1);
    }
    return name.equals(host);
  }
}
