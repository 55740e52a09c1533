package dev.agentvm.git;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.CloneVmFactory;
import dev.agentvm.execution.ExecutionRequest;
import dev.agentvm.execution.ExecutionResult;
import dev.agentvm.execution.GuestImages;
import dev.agentvm.execution.JsonLinesAuditLog;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.internal.AgentVmPaths;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Git tasks on real sandboxes of the python3 + git flavour, one kept ready. */
class GitTaskIT extends RealLibvirtTest {
  static MicroImage image;
  static VMTemplate template;
  private static Sandboxes sandboxes;
  private static AgentExecutor executor;
  private static JsonLinesAuditLog audit;
  @TempDir static Path tmp;

  /** An agent that appends a line to notes.txt and commits it with git, from Python. */
  static final String COMMITTING_AGENT =
      """
      import os, subprocess, sys
      name = sys.argv[1] if len(sys.argv) > 1 else 'notes.txt'
      with open(name, 'a') as f:
          f.write('written by a python agent in the guest\\n')
      subprocess.run(['git', 'add', name], check=True)
      subprocess.run(['git', 'commit', '-q', '-m', 'agent: update ' + name], check=True)
      tree = subprocess.run(['git', 'rev-parse', 'HEAD^{tree}'], check=True,
          capture_output=True, text=True).stdout.strip()
      print('guest tree', tree)
      """;

  @BeforeAll
  static void startPool() throws IOException {
    image = MicroImageBuilder.create().packages(MicroImage.PYTHON_GIT).build();
    template = GuestImages.template(TestVms.name("gittmpl"), image).build();
    sandboxes = Sandboxes.open(conn);
    audit = JsonLinesAuditLog.open(tmp.resolve("audit.jsonl"));
    executor =
        AgentExecutor.builder(sandboxes)
            .sandbox(
                SandboxSpec.defaults()
                    .withImage(image)
                    .withResources(new dev.agentvm.core.ResourceProfile(1, 512))
                    .withNamePrefix(TestVms.PREFIX + "git-"))
            .keepReady(1)
            .auditLog(audit)
            .outputRoot(tmp.resolve("outputs"))
            .build();
  }

  @AfterAll
  static void stopPool() throws Exception {
    if (executor != null) {
      executor.close();
    }
    if (sandboxes != null) {
      sandboxes.close();
    }
    if (audit != null) {
      audit.close();
    }
  }

  @Override
  public void noTestDomainsLeft() {
    // the ready sandbox lives for the class; RealLibvirtTest checks at the end
  }

  static Path newRepo(Path dir) throws IOException {
    Files.createDirectories(dir);
    git(dir, "init", "-q", "-b", "main");
    Files.writeString(dir.resolve("notes.txt"), "first line\n");
    Files.writeString(dir.resolve("README"), "a repository for agents\n");
    git(dir, "add", ".");
    git(dir, "-c", "user.name=host", "-c", "user.email=host@x", "commit", "-q", "-m", "init");
    return dir;
  }

  static String git(Path dir, String... args) throws IOException {
    HostGit.Out o = HostGit.git(dir, java.util.Map.of(), args);
    if (o.exit() != 0) {
      throw new IOException("git " + List.of(args) + ": " + o.stderr());
    }
    return o.stdout().trim();
  }

  private GitTaskRunner.Builder runner() {
    return GitTaskRunner.builder(executor).workRoot(tmp.resolve("git-work"));
  }

  @Test
  void theFlavourRunsPythonAndGitFromItsReadOnlyUsr() {
    ExecutionResult r =
        executor.execute(
            ExecutionRequest.script(
                    "#!/usr/bin/env python3\n"
                        + "import json, sqlite3, subprocess, sys\n"
                        + "print(json.dumps({'py': sys.version.split()[0]}))\n"
                        + "print(subprocess.run(['git', '--version'], capture_output=True,"
                        + " text=True).stdout.strip())\n"
                        + "try:\n    open('/usr/x', 'w')\nexcept OSError as e:\n"
                        + "    print('usr read-only:', e.errno == 30)\n",
                    "python3")
                .timeout(Duration.ofMinutes(1))
                .build());
    assertEquals(0, r.exitCode(), r.stderrText());
    assertTrue(r.stdoutText().contains("{\"py\": \"3."), r.stdoutText());
    assertTrue(r.stdoutText().contains("git version 2."), r.stdoutText());
    assertTrue(r.stdoutText().contains("usr read-only: True"), r.stdoutText());

    // seed 003's executor: the code as input/agent.py, run by python3 in the work directory
    ExecutionResult seed =
        executor.execute(
            ExecutionRequest.python("import os\nprint('test', os.getcwd())")
                .timeout(Duration.ofMinutes(1))
                .build());
    assertEquals(0, seed.exitCode(), seed.stderrText());
    assertEquals("test /workspace/work\n", seed.stdoutText());
  }

  @Test
  void aFailedCaptureLeavesNoImageDirectoryBehind() {
    VMTemplate bad =
        GuestImages.template(TestVms.name("badcapture"), image)
            .disk(
                dev.agentvm.core.DiskAttachment.qcow2(
                    tmp.resolve("elsewhere.qcow2"), "vdb", "/data"))
            .build();
    assertThrows(
        IllegalArgumentException.class,
        () -> CloneVmFactory.capture(conn, bad, Duration.ofSeconds(30)));
    assertFalse(Files.exists(AgentVmPaths.stateRoot().resolve("images").resolve(bad.name())));
  }

  @Test
  void aPythonAgentsCommitArrivesAsABranchWithTheSameTree() throws Exception {
    Path repo = newRepo(tmp.resolve("repo-commit"));
    String headBefore = git(repo, "rev-parse", "HEAD");
    List<String> events = new CopyOnWriteArrayList<>();
    try (GitTaskRunner r =
        runner()
            .listener(
                new GitTaskListener() {
                  @Override
                  public void started(String id, String branch) {
                    events.add(
                        "started " + id + " " + branch + " " + Thread.currentThread().getName());
                  }

                  @Override
                  public void completed(GitTaskResult res) {
                    events.add("completed " + res.taskId() + " " + res.branch());
                  }
                })
            .build()) {
      GitTaskResult res =
          r.run(
              GitTask.builder(repo, "main")
                  .id("commit1")
                  .file("agent.py", COMMITTING_AGENT.getBytes(StandardCharsets.UTF_8))
                  .command("python3 /workspace/input/agent.py")
                  .timeout(Duration.ofMinutes(2))
                  .build());
      assertEquals(GitTaskResult.Outcome.CREATED, res.outcome());
      assertEquals("agent/commit1", res.branch());
      String hostTree = git(repo, "rev-parse", "agent/commit1^{tree}");
      assertTrue(res.stdout().contains("guest tree " + hostTree), res.stdout());
      assertEquals(hostTree, res.tree());
      assertEquals(headBefore, git(repo, "rev-parse", "agent/commit1~1"));
      assertTrue(
          git(repo, "show", "agent/commit1:notes.txt").contains("written by a python agent"));
      // the host's own branch, index and work tree are as they were
      assertEquals(headBefore, git(repo, "rev-parse", "HEAD"));
      assertEquals("", git(repo, "status", "--porcelain"));
      for (int i = 0; i < 50 && events.size() < 2; i++) {
        Thread.sleep(100);
      }
      assertTrue(
          events.get(0).startsWith("started commit1 agent/commit1 agentvm-git-events"),
          events.toString());
      assertEquals("completed commit1 agent/commit1", events.get(1));
    }
  }

  @Test
  void aDirtyWorkTreeFailsTheTaskKeepsThePatchAndLeavesTheHostAlone() throws Exception {
    Path repo = newRepo(tmp.resolve("repo-dirty"));
    String refsBefore = git(repo, "for-each-ref");
    List<String> failed = new CopyOnWriteArrayList<>();
    try (GitTaskRunner r =
        runner()
            .listener(
                new GitTaskListener() {
                  @Override
                  public void failed(String id, String branch, GitTaskException e) {
                    failed.add(id + " " + branch + " " + e.reason());
                  }
                })
            .build()) {
      GitTaskException e =
          assertThrows(
              GitTaskException.class,
              () ->
                  r.run(
                      GitTask.builder(repo, "main")
                          .id("dirty1")
                          .command(
                              "echo 'an unsaved edit' >> notes.txt && echo new > untracked.txt")
                          .timeout(Duration.ofMinutes(1))
                          .build()));
      assertEquals(GitTaskException.Reason.DIRTY_WORK_TREE, e.reason(), e.getMessage());
      String patch = e.uncommittedPatch().orElseThrow();
      assertTrue(patch.contains("+an unsaved edit"), patch);
      assertTrue(patch.contains("untracked.txt"), patch);
      assertEquals(refsBefore, git(repo, "for-each-ref"));
      assertEquals("", git(repo, "status", "--porcelain"));
      // the patch applies to the base: nothing is lost
      Path check = tmp.resolve("dirty.patch");
      Files.writeString(check, patch);
      git(repo, "apply", "--check", check.toString());
      for (int i = 0; i < 50 && failed.isEmpty(); i++) {
        Thread.sleep(100);
      }
      assertEquals(List.of("dirty1 agent/dirty1 DIRTY_WORK_TREE"), failed);

      GitTaskResult auto =
          r.run(
              GitTask.builder(repo, "main")
                  .id("dirty2")
                  .command("echo 'an unsaved edit' >> notes.txt")
                  .onDirty(GitTask.DirtyPolicy.AUTO_COMMIT)
                  .timeout(Duration.ofMinutes(1))
                  .build());
      assertEquals(GitTaskResult.Outcome.CREATED, auto.outcome());
      assertTrue(auto.autoCommittedPatch().orElseThrow().contains("+an unsaved edit"));
      assertTrue(git(repo, "show", "agent/dirty2:notes.txt").endsWith("an unsaved edit"));
    }
  }

  @Test
  void anExistingBranchIsNeverOverwrittenAndMergesReportConflicts() throws Exception {
    Path repo = newRepo(tmp.resolve("repo-branch"));
    // the branch exists with other work on it
    git(repo, "branch", "agent/b1", "main");
    git(repo, "checkout", "-q", "agent/b1");
    Files.writeString(repo.resolve("notes.txt"), "a host edit\n");
    git(repo, "-c", "user.name=h", "-c", "user.email=h@x", "commit", "-qam", "host edit");
    git(repo, "checkout", "-q", "main");
    String tip = git(repo, "rev-parse", "agent/b1");
    try (GitTaskRunner r = runner().build()) {
      GitTask.Builder conflicting =
          GitTask.builder(repo, "main")
              .id("b1")
              .file("agent.py", COMMITTING_AGENT.getBytes(StandardCharsets.UTF_8))
              .command("python3 /workspace/input/agent.py")
              .timeout(Duration.ofMinutes(2));
      GitTaskException diverged =
          assertThrows(GitTaskException.class, () -> r.run(conflicting.build()));
      assertEquals(GitTaskException.Reason.BRANCH_DIVERGED, diverged.reason());
      assertEquals(tip, git(repo, "rev-parse", "agent/b1"));

      GitTaskException conflict =
          assertThrows(
              GitTaskException.class, () -> r.run(conflicting.mergeIfDiverged(true).build()));
      assertEquals(GitTaskException.Reason.MERGE_CONFLICT, conflict.reason());
      assertEquals(List.of("notes.txt"), conflict.conflicts());
      assertEquals(tip, git(repo, "rev-parse", "agent/b1"));

      GitTaskResult merged =
          r.run(
              GitTask.builder(repo, "main")
                  .id("b1")
                  .file("agent.py", COMMITTING_AGENT.getBytes(StandardCharsets.UTF_8))
                  .command("python3 /workspace/input/agent.py other.txt")
                  .mergeIfDiverged(true)
                  .timeout(Duration.ofMinutes(2))
                  .build());
      assertEquals(GitTaskResult.Outcome.MERGED, merged.outcome());
      String now = merged.branchCommit().orElseThrow();
      assertEquals(now, git(repo, "rev-parse", "agent/b1"));
      assertEquals(tip, git(repo, "rev-parse", now + "^1"));
      assertEquals(merged.agentCommit(), git(repo, "rev-parse", now + "^2"));
      assertEquals("a host edit", git(repo, "show", now + ":notes.txt"));
    }
  }

  @Test
  void twoConcurrentTasksOnOneRepositoryMakeTwoBranchesWithoutCrossTalk() throws Exception {
    Path repo = newRepo(tmp.resolve("repo-concurrent"));
    try (GitTaskRunner r = runner().build()) {
      CompletableFuture<GitTaskResult> a =
          r.submit(
              GitTask.builder(repo, "main")
                  .id("conc-a")
                  .command("echo A > a.txt && git add a.txt && git commit -qm 'task a' && sleep 1")
                  .timeout(Duration.ofMinutes(2))
                  .build());
      CompletableFuture<GitTaskResult> b =
          r.submit(
              GitTask.builder(repo, "main")
                  .id("conc-b")
                  .command("echo B > b.txt && git add b.txt && git commit -qm 'task b' && sleep 1")
                  .timeout(Duration.ofMinutes(2))
                  .build());
      GitTaskResult ra = a.get(5, TimeUnit.MINUTES);
      GitTaskResult rb = b.get(5, TimeUnit.MINUTES);
      assertFalse(ra.vm().equals(rb.vm()), "each task has its own VM");
      assertEquals(
          "a.txt\nREADME\nnotes.txt".lines().sorted().toList(), files(repo, "agent/conc-a"));
      assertEquals(
          "b.txt\nREADME\nnotes.txt".lines().sorted().toList(), files(repo, "agent/conc-b"));
    }
  }

  private static List<String> files(Path repo, String rev) throws IOException {
    return git(repo, "ls-tree", "--name-only", rev).lines().sorted().toList();
  }

  @Test
  void secretsReachTheAgentAsEnvironmentOnlyAndAreRedacted() throws Exception {
    Path repo = newRepo(tmp.resolve("repo-secret"));
    String secret = "tok-" + Long.toHexString(System.nanoTime()) + "-zq";
    try (GitTaskRunner r = runner().build()) {
      CompletableFuture<GitTaskResult> f =
          r.submit(
              GitTask.builder(repo, "main")
                  .id("secret1")
                  .secretEnv("API_TOKEN", secret)
                  .command(
                      "echo \"the token is $API_TOKEN\"; echo \"to stderr $API_TOKEN\" >&2;"
                          + " echo ${#API_TOKEN} > length.txt; git add length.txt;"
                          + " git commit -qm 'token length'; sleep 4")
                  .timeout(Duration.ofMinutes(2))
                  .build());
      // while the agent runs (secret in its environment), and after: look where the library
      // writes on the host (the sandboxes' own directories, runtime directories with console
      // logs, the runner's scratch, the audit log); warm images and shared layers predate it
      byte[] needle = secret.getBytes(StandardCharsets.UTF_8);
      Path sandboxRoot = AgentVmPaths.stateRoot().resolve("sandboxes");
      java.util.Set<Path> searched = new java.util.HashSet<>();
      boolean last = false;
      while (!last) {
        last = f.isDone();
        List<Path> now = new java.util.ArrayList<>();
        try (Stream<Path> dirs = Files.list(sandboxRoot)) {
          for (Path d : dirs.toList()) {
            if (d.getFileName().toString().startsWith(TestVms.PREFIX + "git-")) {
              now.addAll(filesUnder(d));
            }
          }
        }
        now.addAll(filesUnder(AgentVmPaths.stateRoot().resolve("run")));
        now.addAll(filesUnder(tmp.resolve("git-work")));
        now.add(tmp.resolve("audit.jsonl"));
        if (last) {
          now.addAll(filesUnder(tmp.resolve("outputs")));
        }
        for (Path p : now) {
          try {
            if (Files.isRegularFile(p)) {
              assertFalse(contains(Files.readAllBytes(p), needle), "the secret is in " + p);
              searched.add(p);
            }
          } catch (java.nio.file.NoSuchFileException gone) {
            // removed while we looked
          }
        }
        Thread.sleep(200);
      }
      GitTaskResult res = f.get(3, TimeUnit.MINUTES);
      assertTrue(
          searched.stream().anyMatch(p -> p.toString().endsWith("console.log")),
          "console logs searched");
      assertTrue(
          searched.stream().anyMatch(p -> p.toString().endsWith(".qcow2")),
          "the sandbox's disk searched");
      assertFalse(res.stdout().contains(secret));
      assertTrue(res.stdout().contains("the token is " + GitTaskRunner.REDACTED), res.stdout());
      assertTrue(res.stderr().contains("to stderr " + GitTaskRunner.REDACTED), res.stderr());
      assertEquals(
          Integer.toString(secret.length()), git(repo, "show", "agent/secret1:length.txt"));
    }
  }

  /** The regular files under {@code root}, skipping what goes while it is walked (it changes). */
  static List<Path> filesUnder(Path root) throws IOException {
    if (!Files.isDirectory(root)) {
      return List.of();
    }
    List<Path> found = new java.util.ArrayList<>();
    Files.walkFileTree(
        root,
        new java.nio.file.SimpleFileVisitor<>() {
          @Override
          public java.nio.file.FileVisitResult visitFile(
              Path file, java.nio.file.attribute.BasicFileAttributes attrs) {
            if (attrs.isRegularFile()) {
              found.add(file);
            }
            return java.nio.file.FileVisitResult.CONTINUE;
          }

          @Override
          public java.nio.file.FileVisitResult visitFileFailed(Path file, IOException e)
              throws IOException {
            return goneMeanwhile(e);
          }

          @Override
          public java.nio.file.FileVisitResult postVisitDirectory(Path dir, IOException e)
              throws IOException {
            return e == null ? java.nio.file.FileVisitResult.CONTINUE : goneMeanwhile(e);
          }

          /** Only what went while walked is skipped: anything unreadable fails the search. */
          private java.nio.file.FileVisitResult goneMeanwhile(IOException e) throws IOException {
            if (e instanceof java.nio.file.NoSuchFileException) {
              return java.nio.file.FileVisitResult.CONTINUE;
            }
            throw e;
          }
        });
    return found;
  }

  /**
   * The agent commits a tree with a {@code .git} entry, by plumbing. Git 2.39's fetch of a bundle
   * would take it unchecked; the runner's quarantine must reject it, and the host repository must
   * get no object, pack leftover or ref of it.
   */
  @Test
  void aCommitWithADotGitEntryIsRejectedAndNothingOfItReachesTheHost() throws Exception {
    Path repo = newRepo(tmp.resolve("repo-dotgit"));
    String countBefore = git(repo, "count-objects", "-v");
    List<String> filesBefore = objectFiles(repo);
    String refsBefore = git(repo, "for-each-ref");
    // the blob's id, computed here: sha1("blob 5\0evil\n")
    byte[] content = "evil\n".getBytes(StandardCharsets.UTF_8);
    java.security.MessageDigest sha1 = java.security.MessageDigest.getInstance("SHA-1");
    sha1.update(("blob " + content.length + "\0").getBytes(StandardCharsets.UTF_8));
    String blob = java.util.HexFormat.of().formatHex(sha1.digest(content));
    try (GitTaskRunner r = runner().build()) {
      GitTaskException e =
          assertThrows(
              GitTaskException.class,
              () ->
                  r.run(
                      GitTask.builder(repo, "main")
                          .id("dotgit")
                          .command(
                              "set -e; b=$(echo evil | git hash-object -w --stdin);"
                                  + " t=$( (git ls-tree HEAD; printf '100644 blob %s\\t.git\\n' $b)"
                                  + " | git mktree);"
                                  + " c=$(git commit-tree $t -p HEAD -m evil);"
                                  + " git update-ref refs/heads/agentvm-work $c; echo $b $c")
                          // the index does not hold the .git entry: the dirty check commits on
                          // top, and the evil commit comes along as the parent
                          .onDirty(GitTask.DirtyPolicy.AUTO_COMMIT)
                          .timeout(Duration.ofMinutes(1))
                          .build()));
      assertEquals(GitTaskException.Reason.EXECUTION, e.reason(), e.getMessage());
      assertTrue(e.getMessage().contains("fail git's checks"), e.getMessage());
      assertTrue(e.getMessage().contains("hasDotgit"), e.getMessage());
    }
    assertNotEquals(0, HostGit.git(repo, java.util.Map.of(), "cat-file", "-e", blob).exit());
    assertEquals(countBefore, git(repo, "count-objects", "-v"));
    assertEquals(filesBefore, objectFiles(repo), "objects or pack leftovers added");
    assertEquals(refsBefore, git(repo, "for-each-ref"), "a ref was written");
  }

  static List<String> objectFiles(Path repo) throws IOException {
    try (Stream<Path> s = Files.walk(repo.resolve(".git/objects"))) {
      return s.filter(Files::isRegularFile)
          .map(p -> repo.relativize(p).toString())
          .filter(p -> !p.contains("/info/"))
          .sorted()
          .toList();
    }
  }

  static boolean contains(byte[] hay, byte[] needle) {
    outer:
    for (int i = 0; i <= hay.length - needle.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return true;
    }
    return false;
  }

  @Test
  void aMissingRepositoryOrBaseIsRefusedBeforeAnyVmIsUsed() throws Exception {
    Path repo = newRepo(tmp.resolve("repo-invalid"));
    try (GitTaskRunner r = runner().build()) {
      GitTaskException noRepo =
          assertThrows(
              GitTaskException.class,
              () -> r.run(GitTask.builder(tmp.resolve("nope"), "main").command("true").build()));
      assertEquals(GitTaskException.Reason.INVALID, noRepo.reason());
      GitTaskException noRef =
          assertThrows(
              GitTaskException.class,
              () -> r.run(GitTask.builder(repo, "no-such-branch").command("true").build()));
      assertEquals(GitTaskException.Reason.INVALID, noRef.reason());
      GitTaskException badBranch =
          assertThrows(
              GitTaskException.class,
              () -> r.run(GitTask.builder(repo, "main").branch("a..b").command("true").build()));
      assertEquals(GitTaskException.Reason.INVALID, badBranch.reason());
      GitTaskException failing =
          assertThrows(
              GitTaskException.class,
              () ->
                  r.run(
                      GitTask.builder(repo, "main")
                          .command("echo oops >&2; exit 3")
                          .timeout(Duration.ofMinutes(1))
                          .build()));
      assertEquals(GitTaskException.Reason.AGENT_FAILED, failing.reason());
      assertTrue(failing.getMessage().contains("oops"), failing.getMessage());
      GitTaskException slow =
          assertThrows(
              GitTaskException.class,
              () ->
                  r.run(
                      GitTask.builder(repo, "main")
                          .command("sleep 100")
                          .timeout(Duration.ofSeconds(3))
                          .build()));
      assertEquals(GitTaskException.Reason.TIMED_OUT, slow.reason(), slow.getMessage());
      // killed, but not by the time limit: a failure of the agent, not a timeout
      GitTaskException killed =
          assertThrows(
              GitTaskException.class,
              () ->
                  r.run(
                      GitTask.builder(repo, "main")
                          .command("kill -9 $$")
                          .timeout(Duration.ofMinutes(1))
                          .build()));
      assertEquals(GitTaskException.Reason.AGENT_FAILED, killed.reason(), killed.getMessage());
      assertTrue(killed.getMessage().contains("137"), killed.getMessage());
      GitTaskResult chatty =
          r.run(
              GitTask.builder(repo, "main")
                  .command("yes agent-output | head -c 200000")
                  .outputLimit(1000)
                  .timeout(Duration.ofMinutes(1))
                  .build());
      assertEquals(GitTaskResult.Outcome.NO_CHANGES, chatty.outcome());
      assertEquals(1000, chatty.stdout().length(), "stdout kept up to the task's limit");
      assertNull(git(repo, "branch", "--list", "agent/*").isEmpty() ? null : "branches made");
    }
  }
}
