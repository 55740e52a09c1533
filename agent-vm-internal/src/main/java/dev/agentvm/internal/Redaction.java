package dev.agentvm.internal;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Removes secret values from text before it reaches a log line or an audit record. Guest-chosen
 * text (file names, error messages, output) may carry a secret the guest was given; this replaces
 * every literal occurrence. It cannot catch a secret the guest encoded (reversed, base64, split):
 * only keeping secrets out of the guest does that.
 */
public final class Redaction {
  /** What a secret value is replaced with. */
  public static final String REDACTED = "[REDACTED]";

  private Redaction() {}

  /** The shortest piece of a secret at a cut edge that is redacted as well. */
  static final int MIN_EDGE_PIECE = 3;

  /**
   * {@code text} with every non-empty secret value replaced, longest first. Text is often cut to a
   * length before it gets here (a command's stderr, an error message), and a cut can fall inside a
   * secret: a beginning of a secret at the very end of the text, or an end of one at the very
   * start, of {@value #MIN_EDGE_PIECE} characters or more, is replaced too (at worst a few ordinary
   * characters there are redacted for nothing).
   */
  public static String redact(String text, Collection<String> secrets) {
    List<String> values = new ArrayList<>(secrets);
    values.sort(Comparator.comparingInt(String::length).reversed());
    String out = text;
    for (String v : values) {
      if (!v.isEmpty()) {
        out = out.replace(v, REDACTED);
      }
    }
    for (String v : values) {
      out = redactEdges(out, v);
    }
    return out;
  }

  private static String redactEdges(String text, String secret) {
    String out = text;
    for (int n = Math.min(secret.length() - 1, out.length()); n >= MIN_EDGE_PIECE; n--) {
      if (out.endsWith(secret.substring(0, n))) {
        out = out.substring(0, out.length() - n) + REDACTED;
        break;
      }
    }
    for (int n = Math.min(secret.length() - 1, out.length()); n >= MIN_EDGE_PIECE; n--) {
      if (out.startsWith(secret.substring(secret.length() - n))) {
        out = REDACTED + out.substring(n);
        break;
      }
    }
    return out;
  }

  /**
   * A copy of an audit record's details with every string in it (map keys and values, list
   * elements, nested) redacted; other values are kept as they are.
   */
  public static Map<String, Object> redactDetails(
      Map<String, Object> details, Collection<String> secrets) {
    if (secrets.isEmpty()) {
      return details;
    }
    Map<String, Object> out = new LinkedHashMap<>();
    details.forEach((k, v) -> out.put(redact(k, secrets), redactValue(v, secrets)));
    return out;
  }

  private static Object redactValue(Object v, Collection<String> secrets) {
    if (v instanceof String s) {
      return redact(s, secrets);
    }
    if (v instanceof Map<?, ?> m) {
      Map<String, Object> out = new LinkedHashMap<>();
      m.forEach(
          (k, x) ->
              out.put(
                  redact(String.valueOf(k), secrets),
                  x == null ? "null" : redactValue(x, secrets)));
      return out;
    }
    if (v instanceof Collection<?> c) {
      List<Object> out = new ArrayList<>();
      for (Object x : c) {
        out.add(x == null ? "null" : redactValue(x, secrets));
      }
      return out;
    }
    return v;
  }
}
