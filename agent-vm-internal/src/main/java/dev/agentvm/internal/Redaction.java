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

  /** {@code text} with every non-empty secret value replaced, longest first. */
  public static String redact(String text, Collection<String> secrets) {
    List<String> values = new ArrayList<>(secrets);
    values.sort(Comparator.comparingInt(String::length).reversed());
    String out = text;
    for (String v : values) {
      if (!v.isEmpty()) {
        out = out.replace(v, REDACTED);
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
