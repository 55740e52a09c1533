package dev.agentvm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.RemoteLibvirtHost;
import dev.agentvm.core.TestVms;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The operator's commands against a second, real libvirt host reached only through libvirt's remote
 * protocol ({@link RemoteLibvirtHost}), after the client that made sandboxes there was killed: ps
 * lists them, reap removes the running one and keeps the paused one, exec uses it.
 */
class RemoteCliIT {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static RemoteLibvirtHost host;
  private static LibvirtConnection conn;

  @BeforeAll
  static void startHost() {
    host = RemoteLibvirtHost.start(6);
    conn = LibvirtConnection.open(host.uri());
  }

  @AfterAll
  static void stopHost() {
    RemoteLibvirtHost.stop(host, conn);
  }

  private static JsonNode find(JsonNode array, String field, String value) {
    for (JsonNode n : array) {
      if (n.get(field).asText().equals(value)) {
        return n;
      }
    }
    throw new AssertionError("no " + field + " " + value + " in " + array);
  }

  @Test
  void aKilledClientsRemoteSandboxesAreListedReapedAndUsedFromTheCommandLine(@TempDir Path root)
      throws Exception {
    String uri = host.uri();
    String prefix = TestVms.PREFIX + "rcli-";
    Process child = TestVms.startJvm(RemoteSandboxOrphanMaker.class, uri, root.toString(), prefix);
    String running;
    String paused;
    // a child that hangs before READY is killed, which ends the read below
    java.util.concurrent.CompletableFuture.delayedExecutor(5, TimeUnit.MINUTES)
        .execute(child::destroyForcibly);
    try (BufferedReader out =
        new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      StringBuilder seen = new StringBuilder();
      String line;
      while ((line = out.readLine()) != null && !line.startsWith("READY")) {
        seen.append(line).append('\n');
      }
      assertTrue(line != null, "child: " + seen);
      List<String> ids = List.of(line.substring("READY ".length()).strip().split(" ", -1));
      running = ids.get(0);
      paused = ids.get(1);
    } finally {
      child.destroyForcibly(); // SIGKILL: no hook, no cleanup
      assertTrue(child.waitFor(30, TimeUnit.SECONDS));
    }
    String[] where = {"--uri", uri, "--sandboxes", root.toString()};

    CliRun ps = new CliRun(cat(new String[] {"ps", "--json"}, where));
    assertEquals(0, ps.code, ps.err);
    JsonNode all = JSON.readTree(ps.out);
    JsonNode vm = find(all.get("vms"), "name", running);
    assertEquals("running", vm.get("state").asText());
    assertEquals("no", vm.get("ownerAlive").asText(), "its owner names this machine: judged");
    JsonNode r = find(all.get("sandboxes"), "id", running);
    assertEquals("running", r.get("state").asText());
    assertFalse(r.get("ownerAlive").asBoolean());
    assertEquals("running", r.get("labels").get("role").asText());
    assertEquals("paused", find(all.get("sandboxes"), "id", paused).get("state").asText());
    assertEquals(
        List.of(),
        JSON.readTree(new CliRun("ps", "--json", "--uri", uri).out)
            .get("sandboxes")
            .findValues("id"),
        "the default records' directory for the host holds none of them");

    CliRun reap = new CliRun(cat(new String[] {"reap", "--json"}, where));
    assertEquals(0, reap.code, reap.out + reap.err);
    JsonNode counts = JSON.readTree(reap.out);
    assertEquals(1, counts.get("vms").asInt(), reap.out);
    assertEquals(1, counts.get("sandboxes").asInt(), reap.out);
    assertFalse(conn.domainNames().contains(running), "the dead client's VM is gone");
    List<String> left =
        JSON
            .readTree(new CliRun(cat(new String[] {"ps", "--json"}, where)).out)
            .get("sandboxes")
            .findValues("id")
            .stream()
            .map(JsonNode::asText)
            .toList();
    assertEquals(List.of(paused), left, "the paused one is kept until its retention ends");

    CliRun exec =
        new CliRun(
            cat(
                new String[] {"exec"},
                where,
                new String[] {paused, "--", "cat", "/workspace/left.txt"}));
    assertEquals(0, exec.code, exec.err + exec.stdout);
    assertEquals("left by a killed client\n", exec.stdout);
    assertEquals(
        "paused",
        find(
                JSON.readTree(new CliRun(cat(new String[] {"ps", "--json"}, where)).out)
                    .get("sandboxes"),
                "id",
                paused)
            .get("state")
            .asText(),
        "paused again after the command");

    try (Sandboxes sandboxes = Sandboxes.open(conn, root)) {
      sandboxes.connect(paused).close();
    }
    assertEquals(0, host.qemuProcesses(), "QEMU left on the remote host");
    assertEquals(
        List.of(),
        host.poolFiles().stream().filter(f -> f.startsWith("sbx.")).toList(),
        "sandbox files left in the remote host's pool");
  }

  private static String[] cat(String[]... parts) {
    return java.util.Arrays.stream(parts).flatMap(java.util.Arrays::stream).toArray(String[]::new);
  }
}
