package dev.agentvm.examples;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.ExecutionResult;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * One script in a fresh sandbox through the executor: an input file in, a result file out, stdout
 * streamed as it comes.
 *
 * <pre>./scripts/run-example.sh HelloAgent</pre>
 */
public final class HelloAgent {
  public static void main(String[] args) throws Exception {
    Path outputs = Files.createTempDirectory("agentvm-hello-agent-");
    try (LibvirtConnection conn = LibvirtConnection.open();
        Sandboxes sandboxes = Sandboxes.open(conn);
        AgentExecutor executor =
            AgentExecutor.builder(sandboxes)
                .sandbox(SandboxSpec.defaults().withNamePrefix("agentvm-hello-agent-"))
                .build()) {
      ExecutionResult r =
          executor.execute(
              ExecutionRequest.script(
                      """
                      echo "agent running on $(hostname), kernel $(uname -r)"
                      tr 'a-z' 'A-Z' < /workspace/input/poem.txt > /workspace/output/shout.txt
                      wc -l < /workspace/input/poem.txt
                      """,
                      "sh")
                  .input(
                      "poem.txt",
                      "so much depends\nupon\na red wheel\nbarrow\n"
                          .getBytes(StandardCharsets.UTF_8))
                  .timeout(Duration.ofMinutes(1))
                  .outputDirectory(outputs.resolve("result"))
                  .build());
      System.out.printf(
          "%s: exit %d in %d ms on %s%n", r.state(), r.exitCode(), r.duration().toMillis(), r.vm());
      System.out.print(r.stdoutText());
      for (var f : r.outputFiles().files()) {
        System.out.printf(
            "output file %s (%d bytes, sha256 %s...):%n",
            f.path(), f.size(), f.sha256().substring(0, 12));
        System.out.print(Files.readString(r.outputFiles().directory().resolve(f.path())));
      }
    } finally {
      try (var files = Files.walk(outputs)) {
        for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
  }
}
