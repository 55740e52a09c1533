package dev.agentvm.execution;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.agentvm.internal.LogText;
import edu.umd.cs.findbugs.annotations.SuppressFBWarnings;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An {@link AuditLog} writing one JSON object per line, appended and flushed per event:
 *
 * <pre>
 * {"time":"2026-11-22T15:40:01.123Z","event":"vm.acquired","executionId":"exec-1a2b","vm":"agentvm-pool-x-3","waitMillis":0}
 * </pre>
 */
public final class JsonLinesAuditLog implements AuditLog {
  private static final Logger LOG = LoggerFactory.getLogger(JsonLinesAuditLog.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  private final OutputStream out;
  private final String where;
  private final Object lock = new Object();
  private boolean failed; // guarded by lock

  private JsonLinesAuditLog(OutputStream out, String where) {
    this.out = out;
    this.where = where;
  }

  /** Appends to {@code file}, creating it (mode 0600: the log names what ran where). */
  public static JsonLinesAuditLog open(Path file) throws IOException {
    Path parent = file.toAbsolutePath().getParent();
    if (parent != null) {
      Files.createDirectories(parent);
    }
    if (!Files.exists(file)) {
      Files.createFile(
          file,
          java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
              java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
    }
    return new JsonLinesAuditLog(
        Files.newOutputStream(file, StandardOpenOption.APPEND, StandardOpenOption.WRITE),
        file.toString());
  }

  /** Writes to a stream (not closed by {@link #close()} if it is {@code System.out}). */
  public static JsonLinesAuditLog to(OutputStream out) {
    return new JsonLinesAuditLog(out, out.toString());
  }

  /** One event as the JSON line this log writes (without the newline). */
  public static String toJson(AuditEvent e) {
    ObjectNode n = JSON.createObjectNode();
    n.put("time", e.time().toString());
    n.put("event", e.event());
    n.put("executionId", e.executionId());
    if (!e.vm().isEmpty()) {
      n.put("vm", e.vm());
    }
    for (Map.Entry<String, Object> d : e.details().entrySet()) {
      n.set(d.getKey(), JSON.valueToTree(d.getValue()));
    }
    try {
      return JSON.writeValueAsString(n);
    } catch (IOException ex) {
      throw new IllegalStateException(ex);
    }
  }

  @Override
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "where is the host's file or stream; the error text is cleaned")
  public void record(AuditEvent e) {
    synchronized (lock) {
      try {
        out.write((toJson(e) + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
      } catch (IOException | RuntimeException ex) {
        if (!failed) {
          failed = true;
          LOG.error(
              "audit log {} cannot be written: {} (further failures not logged)",
              where,
              LogText.clean(ex));
        }
      }
    }
  }

  @Override
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "where is the host's file or stream; the error text is cleaned")
  public void close() {
    synchronized (lock) {
      try {
        if (out != System.out && out != System.err) {
          out.close();
        } else {
          out.flush();
        }
      } catch (IOException e) {
        LOG.warn("closing audit log {}: {}", where, LogText.clean(e));
      }
    }
  }
}
