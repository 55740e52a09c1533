package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JsonLinesAuditLogTest {
  @TempDir Path tmp;

  @Test
  void oneParsableObjectPerLineAppendedAndPrivate() throws Exception {
    Path f = tmp.resolve("audit/audit.jsonl");
    try (JsonLinesAuditLog log = JsonLinesAuditLog.open(f)) {
      log.record(
          new AuditEvent(
              Instant.parse("2026-11-22T10:00:00Z"),
              "vm.acquired",
              "e1",
              "vm-1",
              Map.of("waitMillis", 3)));
      log.record(
          new AuditEvent(
              Instant.now(),
              "files.injected",
              "e1",
              "",
              Map.of("files", List.of(Map.of("path", "a\nb\"c", "bytes", 2)))));
    }
    try (JsonLinesAuditLog log = JsonLinesAuditLog.open(f)) {
      log.record(new AuditEvent(Instant.now(), "execution.completed", "e1", "vm-1", Map.of()));
    }
    List<String> lines = Files.readAllLines(f);
    assertEquals(3, lines.size());
    ObjectMapper m = new ObjectMapper();
    JsonNode first = m.readTree(lines.get(0));
    assertEquals("2026-11-22T10:00:00Z", first.get("time").asText());
    assertEquals("vm-1", first.get("vm").asText());
    assertEquals(3, first.get("waitMillis").asInt());
    assertEquals("a\nb\"c", m.readTree(lines.get(1)).get("files").get(0).get("path").asText());
    assertTrue(!m.readTree(lines.get(1)).has("vm"));
    assertEquals(
        "rw-------",
        java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(f)));
  }
}
