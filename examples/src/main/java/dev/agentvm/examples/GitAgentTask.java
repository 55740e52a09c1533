package dev.agentvm.examples;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ResourceProfile;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.git.GitTask;
import dev.agentvm.git.GitTaskResult;
import dev.agentvm.git.GitTaskRunner;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.UUID;
import java.util.stream.Stream;

/**
 * A coding agent on a throwaway repository: a small Python agent edits a file in the VM and
 * commits; the commit comes back as the branch {@code agent/<task id>}; the branch and its diff are
 * printed.
 *
 * <pre>./scripts/run-example.sh GitAgentTask</pre>
 */
public final class GitAgentTask {
  private static final String AGENT =
      """
      import subprocess
      with open('greeting.txt') as f:
          text = f.read()
      with open('greeting.txt', 'w') as f:
          f.write(text.replace('hello', 'hello from a VM'))
      subprocess.run(['git', 'commit', '-qam', 'Greet from the VM'], check=True)
      print('agent: committed', subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
            capture_output=True, text=True).stdout.strip())
      """;

  public static void main(String[] args) throws Exception {
    Path repo = Files.createTempDirectory("agentvm-git-example-");
    try {
      git(repo, "init", "-q", "-b", "main");
      Files.writeString(repo.resolve("greeting.txt"), "hello\n");
      git(repo, "add", ".");
      git(
          repo,
          "-c",
          "user.name=you",
          "-c",
          "user.email=you@example.invalid",
          "commit",
          "-qm",
          "init");

      MicroImage image = MicroImageBuilder.create().packages(MicroImage.PYTHON_GIT).build();
      String name = "agentvm-git-example-" + UUID.randomUUID().toString().substring(0, 8);
      try (LibvirtConnection conn = LibvirtConnection.open();
          Sandboxes sandboxes = Sandboxes.open(conn);
          AgentExecutor executor =
              AgentExecutor.builder(sandboxes)
                  .sandbox(
                      SandboxSpec.defaults()
                          .withImage(image)
                          .withResources(new ResourceProfile(1, 512))
                          .withNamePrefix(name + "-"))
                  .build();
          GitTaskRunner runner = GitTaskRunner.builder(executor).build()) {
        GitTaskResult r =
            runner.run(
                GitTask.builder(repo, "main")
                    .file("agent.py", AGENT.getBytes(StandardCharsets.UTF_8))
                    .command("python3 /workspace/input/agent.py")
                    .timeout(Duration.ofMinutes(2))
                    .build());
        System.out.print(r.stdout());
        System.out.printf(
            "%s branch %s at %s (tree %s) in %d ms on %s%n",
            r.outcome(),
            r.branch(),
            r.branchCommit().orElse("-"),
            r.tree(),
            r.duration().toMillis(),
            r.vm());
        System.out.print(git(repo, "diff", "main", r.branch()));
      }
    } finally {
      try (Stream<Path> s = Files.walk(repo)) {
        for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
  }

  private static String git(Path dir, String... args) throws Exception {
    List<String> cmd = new java.util.ArrayList<>(List.of("git"));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (p.waitFor() != 0) {
      throw new IllegalStateException("git " + String.join(" ", args) + ": " + out);
    }
    return out;
  }
}
