package dev.agentvm.examples;

import static java.nio.charset.StandardCharsets.UTF_8;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.protocol.FsEntry;
import java.util.Map;

/**
 * A sandbox session, the way an agent platform drives one: create a sandbox, run a sample agent in
 * it over several commands (write its input and code, run it, read its result, fix and run again),
 * pause it to disk, resume it, check that its files and a background process survived, and close
 * it. Prints the time of each step.
 */
public final class HelloSandbox {
  private static long last;

  public static void main(String[] args) throws Exception {
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn)) {
      last = System.nanoTime();
      Sandbox sb = sandboxes.create(SandboxSpec.defaults().withLabel("example", "hello-sandbox"));
      try {
        step("create (boot, or a warm image), agent ready", sb.id() + " on " + conn.uri());

        sb.files()
            .write(
                "/workspace/input.txt",
                "the quick brown fox jumps over the lazy dog\nthe dog sleeps\n".getBytes(UTF_8));
        sb.files()
            .write(
                "/workspace/agent.sh",
                """
                # a sample agent: count the words of its input, keep the top three
                echo "agent running on $(uname -n), kernel $(uname -r)"
                tr ' ' '\\n' < input.txt | grep -v '^$' | sort | uniq -c | sort -rn | head -3 > top-words.txt
                echo "words: $(wc -w < input.txt)"
                """
                    .getBytes(UTF_8));
        step("write input and agent", "2 files");

        ExecResult r = sb.exec(ExecRequest.command("sh", "agent.sh").withCwd("/workspace"));
        step("run the agent", "exit " + r.exitCode());
        System.out.print(r.stdoutText().indent(4));
        String top = new String(sb.files().read("/workspace/top-words.txt"), UTF_8);
        step("read its result", "top-words.txt");
        System.out.print(top.indent(4));

        // a tool call that fails, and the agent's fix
        ExecResult bad = sb.run("cd /workspace && sh agent2.sh");
        step("a failing command", "exit " + bad.exitCode() + ": " + bad.stderrText().trim());
        sb.files().rename("/workspace/agent.sh", "/workspace/agent2.sh");
        ExecResult fixed = sb.run("cd /workspace && sh agent2.sh >/dev/null && ls");
        step("fixed and run again", "exit " + fixed.exitCode());

        // a background process that must survive the pause
        sb.run(
            "setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /workspace/ticks.new;"
                + " mv /workspace/ticks.new /workspace/ticks; sleep 1; done' </dev/null >/dev/null 2>&1 &");
        Thread.sleep(1500);
        String before = sb.run("cat /workspace/ticks").stdoutText().trim();
        step("start a background process", "ticking once a second");
        sb.pause();
        step("pause (memory and disk saved, no VM)", "state " + sb.state());
        System.out.printf(
            "    found again by label: %s%n",
            sandboxes.list(Map.of("example", "hello-sandbox")).stream()
                .map(i -> i.id() + " " + i.state())
                .toList());
        sb.resume();
        step("resume (restore, agent reconnected)", "state " + sb.state());
        Thread.sleep(1500);
        String after = sb.run("cat /workspace/ticks").stdoutText().trim();
        System.out.printf(
            "    background process: tick %s before the pause, %s now%n", before, after);
        for (FsEntry e : sb.files().list("/workspace")) {
          System.out.printf("    /workspace/%-14s %6d bytes%n", e.name(), e.size());
        }
        step("check files and processes", "intact");
      } finally {
        sb.close();
      }
      step("close (everything removed)", sb.state().toString());
    }
  }

  private static void step(String what, String detail) {
    long now = System.nanoTime();
    System.out.printf("%-38s %7d ms  %s%n", what, (now - last) / 1_000_000, detail);
    last = now;
  }
}
