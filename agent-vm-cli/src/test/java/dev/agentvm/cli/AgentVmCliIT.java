package dev.agentvm.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import org.junit.jupiter.api.Test;

/** The operator's commands against this host's libvirt and a real sandbox. */
class AgentVmCliIT extends RealLibvirtTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void imageBuildFindsOrBuildsTheImageAndSaysWhereItIs() throws Exception {
    CliRun r = new CliRun("image", "build", "--json");
    assertEquals(0, r.code, r.out + r.err);
    JsonNode image = JSON.readTree(r.out);
    assertTrue(
        java.nio.file.Files.isRegularFile(java.nio.file.Path.of(image.get("kernel").asText())),
        r.out);
    assertEquals(TestVms.image().kernelRelease(), image.get("kernelRelease").asText());
    CliRun text = new CliRun("image", "build");
    assertTrue(text.out.startsWith("image " + image.get("directory").asText()), text.out);
    assertEquals(2, new CliRun("image", "build", "--packages", "jq;rm -rf").code);
  }

  @Test
  void doctorJudgesThisHost() throws Exception {
    CliRun r = new CliRun("doctor", "--json");
    assertEquals(0, r.code, r.out + r.err);
    JsonNode checks = JSON.readTree(r.out);
    assertEquals("libvirt", checks.get(0).get("name").asText());
    assertEquals("ok", checks.get(0).get("verdict").asText());
    for (JsonNode c : checks) {
      assertFalse(c.get("verdict").asText().equals("fail"), c.toString());
      if (c.get("verdict").asText().equals("warn")) {
        assertFalse(
            c.get("fix").asText().isEmpty() && !c.get("name").asText().equals("state directory"),
            c.toString());
      }
    }
    CliRun text = new CliRun("doctor");
    assertTrue(text.out.contains("libvirt"), text.out);

    CliRun down =
        new CliRun("doctor", "--uri", "qemu+unix:///system?socket=/nonexistent/agent-vm.sock");
    assertEquals(1, down.code, "libvirt unreachable is a failing check");
    assertTrue(down.out.startsWith("fail  libvirt"), down.out);
    assertTrue(down.out.contains("unknown virtualization"), down.out);
    CliRun psDown =
        new CliRun("ps", "--uri", "qemu+unix:///system?socket=/nonexistent/agent-vm.sock");
    assertEquals(1, psDown.code);
    assertTrue(psDown.err.startsWith("agent-vm ps: "), "one line, no stack trace: " + psDown.err);
    // reaping another host is allowed (it judges only this machine's owners there); an unreachable
    // one fails naming it
    CliRun remote = new CliRun("reap", "--uri", "qemu+ssh://elsewhere.invalid/system");
    assertEquals(1, remote.code);
    assertTrue(remote.err.contains("elsewhere.invalid"), remote.err);
  }

  @Test
  void psLogsExecKillAndReapOnARealSandbox() throws Exception {
    try (Sandboxes sandboxes = Sandboxes.open(conn)) {
      Sandbox sb =
          sandboxes.create(
              SandboxSpec.defaults()
                  .withNamePrefix(TestVms.PREFIX + "cli-")
                  .withLabel("team", "ops"));
      String id = sb.id();
      try {
        // a sandbox restored from the warm image has printed nothing yet: it prints now
        sb.run("echo agentvm-cli-marker > /dev/ttyS0");
        CliRun logs = new CliRun("logs", "--tail", "100000", id);
        assertEquals(0, logs.code, logs.err);
        assertTrue(logs.stdout.contains("agentvm-cli-marker"), "the console: " + logs.stdout);

        CliRun running = new CliRun("ps", "--json");
        assertEquals(0, running.code, running.err);
        JsonNode all = JSON.readTree(running.out);
        JsonNode vm = find(all.get("vms"), "name", id);
        assertEquals("running", vm.get("state").asText());
        assertEquals("yes", vm.get("ownerAlive").asText());
        assertTrue(vm.get("memoryMiB").asInt() > 0);

        // a running sandbox belongs to its process
        CliRun busy = new CliRun("exec", id, "--", "true");
        assertEquals(ExecCommand.SANDBOX_FAILED, busy.code);
        assertTrue(busy.err.contains("pause it there first"), busy.err);

        sb.pause();
        JsonNode box =
            find(JSON.readTree(new CliRun("ps", "--json").out).get("sandboxes"), "id", id);
        assertEquals("paused", box.get("state").asText());
        assertEquals("ops", box.get("labels").get("team").asText());

        CliRun exec =
            new CliRun("exec", id, "--", "sh", "-c", "echo hello from $(hostname); exit 3");
        assertEquals(3, exec.code, exec.err + exec.stdout);
        assertTrue(exec.stdout.startsWith("hello from"), exec.stdout);
        CliRun nope = new CliRun("exec", id, "--", "/no/such/program");
        assertTrue(nope.code == ExecCommand.NOT_RUN || nope.code == 127, nope.code + nope.err);
        box = find(JSON.readTree(new CliRun("ps", "--json").out).get("sandboxes"), "id", id);
        assertEquals("paused", box.get("state").asText(), "left as it was found");
        assertEquals("", new CliRun("ps").err);

        // back in this process, then its VM killed by the operator
        sb = sandboxes.connect(id);
        sb.resume();
        CliRun refused = new CliRun("kill", id);
        assertEquals(1, refused.code, "its process (this one) still runs");
        assertTrue(refused.err.contains("--force"), refused.err);
        assertTrue(conn.domainNames().contains(id));
        CliRun kill = new CliRun("kill", "--force", id);
        assertEquals(0, kill.code, kill.err);
        assertFalse(conn.domainNames().contains(id));
        assertEquals(1, new CliRun("kill", id).code, "no such VM any more");
        CliRun missing = new CliRun("exec", "agentvm-test-none-" + System.nanoTime(), "--", "true");
        assertEquals(ExecCommand.SANDBOX_FAILED, missing.code);
        CliRun notRun = new CliRun("exec", id + "x", "--", "true");
        assertEquals(ExecCommand.SANDBOX_FAILED, notRun.code);

        CliRun reap = new CliRun("reap", "--json");
        assertEquals(0, reap.code, reap.out + reap.err);
        JsonNode counts = JSON.readTree(reap.out);
        assertTrue(counts.get("sandboxes").asInt() >= 0 && counts.get("vms").asInt() >= 0);
        assertEquals(0, counts.get("failures").size());
      } finally {
        sb.close();
      }
    }
  }

  private static JsonNode find(JsonNode array, String field, String value) {
    for (JsonNode n : array) {
      if (n.get(field).asText().equals(value)) {
        return n;
      }
    }
    throw new AssertionError(value + " not in " + array);
  }
}
