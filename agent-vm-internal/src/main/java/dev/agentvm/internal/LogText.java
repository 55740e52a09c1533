package dev.agentvm.internal;

import org.jspecify.annotations.Nullable;

/**
 * Text from a guest (names, messages, output) made safe for a log line or an audit record: control
 * characters (CR, LF, ESC, ...) and other format characters replaced by {@code '?'}, and the length
 * capped. A guest must not be able to forge log lines, hide text from a terminal, or make one line
 * arbitrarily long.
 */
public final class LogText {
  /** Characters kept from one guest string; the rest is replaced by a marker with the count. */
  public static final int MAX_CHARS = 512;

  private LogText() {}

  /** The cleaned text; {@code "null"} for null. */
  public static String clean(@Nullable Object text) {
    String s = String.valueOf(text);
    int n = Math.min(s.length(), MAX_CHARS);
    StringBuilder b = new StringBuilder(n + 32);
    for (int i = 0; i < n; i++) {
      char c = s.charAt(i);
      int type = Character.getType(c);
      boolean unsafe =
          Character.isISOControl(c)
              || type == Character.FORMAT
              || type == Character.LINE_SEPARATOR
              || type == Character.PARAGRAPH_SEPARATOR;
      b.append(unsafe ? '?' : c);
    }
    if (s.length() > MAX_CHARS) {
      b.append("...(").append(s.length() - MAX_CHARS).append(" more chars)");
    }
    return b.toString();
  }
}
