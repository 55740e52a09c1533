package dev.agentvm.execution.sandbox;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import dev.agentvm.core.TestVms;
import dev.agentvm.core.agent.AgentErrorException;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.FsEntry;
import dev.agentvm.protocol.FsEvent;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Sandboxes on real VMs: sessions, files, pause/resume across processes, checkpoints, forks. */
class SandboxIT extends RealLibvirtTest {
  /**
   * A loop that counts into /workspace/counter five times a second, detached from its command. It
   * writes a new file and renames it, so no reader (nor a fork's capture) sees a truncated one.
   */
  static final String COUNTER_LOOP =
      "setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /workspace/counter.new;"
          + " mv /workspace/counter.new /workspace/counter; sleep 0.2; done' </dev/null >/dev/null 2>&1 &";

  private Sandboxes sandboxes;
  private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
  private final SandboxSpec spec =
      SandboxSpec.defaults()
          .withNamePrefix(TestVms.PREFIX + "sbx-")
          .withCommandTimeout(Duration.ofSeconds(60));

  @BeforeEach
  void open() {
    sandboxes = Sandboxes.open(conn);
    sandboxes.bindTo(registry);
  }

  /** How often a sandbox phase was timed, by its tags. */
  private long timed(String meter, String... tags) {
    return registry.find(meter).tags(tags).timers().stream().mapToLong(t -> t.count()).sum();
  }

  @AfterEach
  void closeAll() {
    sandboxes.close();
    for (SandboxInfo i : sandboxes.list()) {
      if (i.id().startsWith(TestVms.PREFIX)) {
        sandboxes.connect(i.id()).close();
      }
    }
  }

  @Test
  void aSessionRunsManyCommandsOnItsFiles() throws Exception {
    try (Sandbox sb = sandboxes.create(spec.withLabel("test", "session"))) {
      assertEquals(SandboxState.RUNNING, sb.state());
      sb.files()
          .write("/workspace/app/main.sh", "echo \"sum=$((2+3))\" > out.txt\n".getBytes(UTF_8));
      ExecResult r = sb.exec(ExecRequest.command("sh", "main.sh").withCwd("/workspace/app"));
      assertEquals(0, r.exitCode(), r.stderrText());
      assertEquals("sum=5\n", new String(sb.files().read("/workspace/app/out.txt"), UTF_8));
      // change it, run again
      sb.files()
          .write("/workspace/app/main.sh", "echo \"sum=$((2*3))\" > out.txt\n".getBytes(UTF_8));
      sb.exec(ExecRequest.command("sh", "main.sh").withCwd("/workspace/app"));
      assertEquals("sum=6\n", new String(sb.files().read("/workspace/app/out.txt"), UTF_8));

      // listing, stat, mkdir, rename, remove; names are UTF-8 both ways
      String odd = "/workspace/app/naïve ü 𝄞.txt";
      sb.files().write(odd, "x".getBytes(UTF_8));
      sb.files().mkdirs("/workspace/app/sub/deeper");
      List<String> names = sb.files().list("/workspace/app").stream().map(FsEntry::name).toList();
      assertEquals(List.of("main.sh", "naïve ü 𝄞.txt", "out.txt", "sub"), names);
      FsEntry st = sb.files().stat(odd);
      assertEquals(FsEntry.Kind.FILE, st.kind());
      assertEquals(1, st.size());
      assertEquals(0644, st.mode());
      sb.files().rename(odd, "/workspace/app/sub/moved.txt");
      assertFalse(sb.files().exists(odd));
      assertTrue(sb.files().exists("/workspace/app/sub/moved.txt"));
      sb.files().remove("/workspace/app/sub");
      assertFalse(sb.files().exists("/workspace/app/sub"));
      AgentErrorException missing =
          assertThrows(AgentErrorException.class, () -> sb.files().stat("/workspace/nope"));
      assertEquals(ErrorCode.NOT_FOUND, missing.code());
      AgentErrorException notEmpty =
          assertThrows(
              AgentErrorException.class,
              () ->
                  sb.withAgent(
                      a -> {
                        a.remove("/workspace/app", false, Duration.ofSeconds(10));
                        return null;
                      }));
      assertEquals(ErrorCode.NOT_EMPTY, notEmpty.code());

      // the workspace is a file system of its own size: the guest cannot store more there
      ExecResult fill = sb.run("dd if=/dev/zero of=/workspace/fill bs=1M count=400 2>&1; sync");
      assertTrue(fill.stdoutText().contains("No space left"), fill.stdoutText());
      ExecResult df = sb.run("df -k /workspace | tail -1");
      assertTrue(df.stdoutText().contains("/workspace"), df.stdoutText());

      // a command without timeout gets the sandbox's default
      assertEquals(Duration.ofSeconds(60), sb.commandTimeout());
      assertEquals("agentvm", sb.exec("hostname").stdoutText().trim().substring(0, 7));
    }
  }

  @Test
  void backgroundProcessesStreamTakeInputAndSurviveAPause() throws Exception {
    try (Sandbox sb = sandboxes.create(spec)) {
      Captured seen = new Captured();
      OutputListener listener = seen;
      SandboxProcess p =
          sb.start(
              ExecRequest.script(
                  "while read line; do echo \"got $line\"; done; echo bye; exit 3", "sh"),
              listener);
      p.write("one\n".getBytes(UTF_8));
      waitFor(() -> seen.toString().contains("got one"), Duration.ofSeconds(30));
      assertTrue(
          sb.processes().stream().anyMatch(e -> e.handle() == p.handle() && e.running()),
          sb.processes().toString());

      sb.pause();
      sb.resume(); // the sandbox re-attaches: the same handle goes on streaming
      // cold, or restored from a warm image when an earlier test on this host left one
      assertEquals(1, timed("agentvm.sandbox.create", "outcome", "success"));
      assertEquals(1, timed("agentvm.sandbox.pause", "outcome", "success"));
      assertEquals(1, timed("agentvm.sandbox.resume", "outcome", "success"));
      sb.resume(); // running: nothing to do, nothing timed
      assertEquals(1, timed("agentvm.sandbox.resume"));
      p.write("two\n".getBytes(UTF_8));
      waitFor(() -> seen.toString().contains("got two"), Duration.ofSeconds(30));
      p.closeStdin();
      assertEquals(3, p.waitFor(Duration.ofSeconds(30)).exitCode());
      assertTrue(new String(p.stdoutTail(), UTF_8).endsWith("got one\ngot two\nbye\n"));
      assertFalse(p.isAlive());

      SandboxProcess sleeper = sb.start(ExecRequest.command("sleep", "600"), OutputListener.NONE);
      assertTrue(sleeper.isAlive());
      sleeper.kill();
      ExitStatus killed = sleeper.waitFor(Duration.ofSeconds(30));
      assertNotEquals(0, killed.exitCode());
      AgentErrorException gone =
          assertThrows(AgentErrorException.class, () -> sb.attach(4242, OutputListener.NONE));
      assertEquals(ErrorCode.NOT_FOUND, gone.code());
    }
  }

  @Test
  void aWarmImageMakesCreateARestoreWithItsOwnIdentity() throws Exception {
    SandboxSpec warmSpec = spec.withLabel("test", "warm");
    sandboxes.warmUp(warmSpec);
    sandboxes.warmUp(warmSpec); // made once, then reused
    try (Sandbox a = sandboxes.create(warmSpec);
        Sandbox b = sandboxes.create(warmSpec)) {
      assertEquals(2, timed("agentvm.sandbox.create", "kind", "restore", "outcome", "success"));
      assertEquals(a.id(), a.exec("hostname").stdoutText().trim());
      assertEquals(b.id(), b.exec("hostname").stdoutText().trim());
      assertClockIsTheHosts(a); // the warm image's clock was its own making's
      assertNotEquals(
          a.run("cat /etc/machine-id").stdoutText(), b.run("cat /etc/machine-id").stdoutText());
      a.files().write("/workspace/only-a", "a".getBytes(UTF_8));
      assertFalse(b.files().exists("/workspace/only-a"));
      assertTrue(a.run("grep -q ' /workspace ext4' /proc/mounts").exitCode() == 0);
      ExecResult full = b.run("dd if=/dev/zero of=/workspace/fill bs=1M count=400 2>&1");
      assertTrue(full.stdoutText().contains("No space left"), full.stdoutText());
    }
  }

  @Test
  void readySandboxesAreHandedOutWithTheCallersSettingsAndMadeAgain() throws Exception {
    SandboxSpec shape = spec.withNamePrefix(TestVms.PREFIX + "rdy-");
    sandboxes.keepReady(shape, 1);
    waitFor(() -> sandboxes.readyCount(shape) == 1, Duration.ofMinutes(3));
    List<String> readyVms =
        conn.domainNames().stream().filter(n -> n.startsWith(TestVms.PREFIX + "rdy-")).toList();
    assertEquals(1, readyVms.size(), readyVms.toString());
    assertTrue(
        sandboxes.list().stream().noneMatch(i -> i.id().equals(readyVms.get(0))),
        "a ready sandbox is not listed");
    try (Sandbox sb = sandboxes.create(shape.withLabel("who", "taker"))) {
      assertEquals(readyVms.get(0), sb.id(), "the ready one was handed out");
      assertEquals(sb.id(), sb.exec("hostname").stdoutText().trim());
      assertEquals(
          List.of(sb.id()),
          sandboxes.list(java.util.Map.of("who", "taker")).stream().map(i -> i.id()).toList(),
          "it carries the caller's labels");
      waitFor(() -> sandboxes.readyCount(shape) == 1, Duration.ofMinutes(3));
      String next =
          conn.domainNames().stream()
              .filter(n -> n.startsWith(TestVms.PREFIX + "rdy-") && !n.equals(sb.id()))
              .findFirst()
              .orElseThrow();
      try (Sandbox other = sandboxes.create(shape)) {
        assertEquals(next, other.id(), "made again in the background, handed out next");
        assertNotEquals(
            sb.run("cat /etc/machine-id").stdoutText(),
            other.run("cat /etc/machine-id").stdoutText());
      }
    }
    waitFor(() -> sandboxes.readyCount(shape) == 1, Duration.ofMinutes(3));
    sandboxes.close();
    assertEquals(
        List.of(),
        conn.domainNames().stream().filter(n -> n.startsWith(TestVms.PREFIX + "rdy-")).toList(),
        "closing the sandboxes closes the ready ones");
  }

  @Test
  void closingWhileAReadySandboxBootsLeavesNoVmBehind() throws Exception {
    // the filler thread is interrupted in the middle of a boot: its cleanup must still run
    SandboxSpec shape =
        spec.toBuilder().namePrefix(TestVms.PREFIX + "rdyc-").useWarmImage(false).build();
    Sandboxes other = Sandboxes.open(conn);
    other.keepReady(shape, 1);
    java.util.function.Supplier<List<String>> vms =
        () ->
            conn.domainNames().stream()
                .filter(n -> n.startsWith(TestVms.PREFIX + "rdyc-"))
                .toList();
    waitFor(() -> !vms.get().isEmpty(), Duration.ofMinutes(1));
    assertEquals(1, vms.get().size(), "the ready sandbox's VM is defined");
    assertEquals(0, other.readyCount(shape), "and not ready yet");
    other.close();
    assertEquals(List.of(), vms.get(), "closing mid-boot removed it");
  }

  @Test
  void aWatchSeesCreateModifyDeleteAndOutlivesAPause() throws Exception {
    try (Sandbox sb = sandboxes.create(spec)) {
      sb.files().mkdirs("/workspace/w");
      List<FsEvent> events = new java.util.concurrent.CopyOnWriteArrayList<>();
      try (SandboxWatch w = sb.files().watch("/workspace/w", events::add)) {
        sb.run("echo a > /workspace/w/f; sleep 0.2; echo b >> /workspace/w/f; rm /workspace/w/f");
        waitFor(
            () -> events.contains(new FsEvent(FsEvent.Kind.DELETED, "f")), Duration.ofSeconds(30));
        assertTrue(events.contains(new FsEvent(FsEvent.Kind.CREATED, "f")), events.toString());
        assertTrue(events.contains(new FsEvent(FsEvent.Kind.MODIFIED, "f")), events.toString());
        sb.pause();
        sb.resume();
        sb.run("touch /workspace/w/after");
        waitFor(
            () -> events.contains(new FsEvent(FsEvent.Kind.CREATED, "after")),
            Duration.ofSeconds(30));
        assertTrue(w.isActive());
      }
      events.clear();
      sb.run("touch /workspace/w/late");
      Thread.sleep(1000);
      assertEquals(List.of(), events, "a closed watch reported");
      AgentErrorException bad =
          assertThrows(
              AgentErrorException.class, () -> sb.files().watch("/workspace/nope", e -> {}));
      assertEquals(ErrorCode.NOT_FOUND, bad.code());
    }
  }

  /**
   * Arbitrary Unicode file names (outside the BMP too) go in by PUT_FILE and come back byte-exact
   * from LIST, STAT, a watch and GET_FILE. Seeded: the seed is in the failure message.
   */
  @Test
  void unicodeNamesComeBackByteExactFromListStatWatchAndRead() throws Exception {
    long seed = System.nanoTime();
    java.util.Random rnd = new java.util.Random(seed);
    try (Sandbox sb = sandboxes.create(spec)) {
      sb.files().mkdirs("/workspace/u");
      List<FsEvent> events = new java.util.concurrent.CopyOnWriteArrayList<>();
      Set<String> names = new java.util.TreeSet<>();
      try (SandboxWatch w = sb.files().watch("/workspace/u", events::add)) {
        while (names.size() < 40) {
          String name = randomName(rnd);
          if (names.add(name)) {
            sb.files().write("/workspace/u/" + name, name.getBytes(UTF_8));
          }
        }
        // PUT_FILE writes a temporary name and renames it: the rename reports the final name
        waitFor(() -> created(events).containsAll(names), Duration.ofSeconds(60));
        assertTrue(w.isActive());
      }
      Set<String> listed = new java.util.TreeSet<>();
      sb.files().list("/workspace/u").forEach(e -> listed.add(e.name()));
      assertEquals(names, listed, "seed " + seed);
      for (String name : List.copyOf(names).subList(0, 5)) {
        assertEquals("/workspace/u/" + name, sb.files().stat("/workspace/u/" + name).name());
        assertEquals(
            name, new String(sb.files().read("/workspace/u/" + name), UTF_8), "seed " + seed);
      }
    }
  }

  private static Set<String> created(List<FsEvent> events) {
    Set<String> s = new java.util.TreeSet<>();
    events.stream().filter(e -> e.kind() == FsEvent.Kind.CREATED).forEach(e -> s.add(e.name()));
    return s;
  }

  /** 1-40 code points from all of Unicode except '/', NUL, surrogates and unassigned ones. */
  private static String randomName(java.util.Random rnd) {
    StringBuilder b = new StringBuilder();
    int n = 1 + rnd.nextInt(40);
    while (b.codePointCount(0, b.length()) < n) {
      int cp = rnd.nextInt(4) == 0 ? 0x10000 + rnd.nextInt(0x20000) : 0x20 + rnd.nextInt(0xFFE0);
      if (cp == '/'
          || !Character.isDefined(cp)
          || Character.getType(cp) == Character.SURROGATE
          || Character.getType(cp) == Character.PRIVATE_USE) {
        continue;
      }
      b.appendCodePoint(cp);
    }
    String s = b.toString();
    if (s.equals(".") || s.equals("..") || s.getBytes(UTF_8).length > 200) {
      return randomName(rnd); // not a name, or over ext4's 255 bytes with PUT_FILE's temp suffix
    }
    return s;
  }

  @Test
  void anAttachedDiskKeepsItsFilesAcrossSandboxesAndRefusesWhatWouldForkItsState(
      @org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    // QEMU runs as its own user: the directory must let it through (libvirt chowns the disk)
    java.nio.file.Files.setPosixFilePermissions(
        tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
    Path disk = tmp.resolve("cache.qcow2");
    dev.agentvm.storage.DiskImages.createExt4(disk, 32L << 20, null);
    java.nio.file.Files.setPosixFilePermissions(
        disk, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
    SandboxSpec withDisk = spec.withAttachedDisk(new SandboxSpec.AttachedDisk(disk, "/mnt/cache"));
    assertEquals(Duration.ZERO, withDisk.idleTimeout(), "a sandbox with a disk never idles out");
    assertThrows(IllegalArgumentException.class, () -> sandboxes.keepReady(withDisk, 1));
    try (Sandbox sb = sandboxes.create(withDisk)) {
      sb.files().write("/mnt/cache/kept.txt", "from the first".getBytes(UTF_8));
      for (Runnable refused :
          List.<Runnable>of(sb::pause, () -> sb.checkpoint("a"), () -> sb.fork(1))) {
        SandboxException e = assertThrows(SandboxException.class, refused::run);
        assertTrue(e.getMessage().contains("attached disk"), e.getMessage());
      }
      assertEquals(SandboxState.RUNNING, sb.state());
    } // closed with a graceful power-off: no sync was asked for, the close flushes
    try (Sandbox again = sandboxes.create(withDisk)) {
      assertEquals("from the first", new String(again.files().read("/mnt/cache/kept.txt"), UTF_8));
    }
    SandboxException missing =
        assertThrows(
            SandboxException.class,
            () ->
                sandboxes.create(
                    spec.withAttachedDisk(
                        new SandboxSpec.AttachedDisk(tmp.resolve("none.qcow2"), "/mnt/x"))));
    assertTrue(missing.getMessage().contains("does not exist"), missing.getMessage());
  }

  @Test
  void checkpointsRollBackAndForth() throws Exception {
    try (Sandbox sb = sandboxes.create(spec)) {
      // A is saved with a clock 25 years late: whoever restores it must get the time back
      sb.run("echo one > /workspace/a; echo mem-one > /tmp/m; date -s @1000000000 >/dev/null");
      sb.checkpoint("A");
      assertClockIsTheHosts(sb); // a checkpoint restores the running sandbox too
      sb.run("echo two > /workspace/a; echo new > /workspace/b; echo mem-two > /tmp/m");
      sb.checkpoint("B");
      sb.run("echo three > /workspace/a");
      assertEquals(List.of("A", "B"), sb.checkpoints());

      sb.rollback("A");
      assertEquals("one\n", sb.run("cat /workspace/a").stdoutText());
      assertEquals("mem-one\n", sb.run("cat /tmp/m").stdoutText());
      assertFalse(sb.files().exists("/workspace/b"));

      sb.rollback("B");
      assertEquals("two\n", sb.run("cat /workspace/a").stdoutText());
      assertEquals("new\n", sb.run("cat /workspace/b").stdoutText());
      assertEquals("mem-two\n", sb.run("cat /tmp/m").stdoutText());

      // and back again: a checkpoint can be used many times
      sb.rollback("A");
      assertEquals("one\n", sb.run("cat /workspace/a").stdoutText());
      assertClockIsTheHosts(sb); // not A's
      assertThrows(SandboxException.class, () -> sb.rollback("nope"));
      assertEquals(2, timed("agentvm.sandbox.checkpoint", "outcome", "success"));
      assertEquals(3, timed("agentvm.sandbox.rollback", "outcome", "success"));
      assertEquals(3, timed("agentvm.sandbox.rollback"), "no such checkpoint: nothing to time");
    }
  }

  @Test
  void aForkCopiesProcessesAndFilesWithItsOwnIdentity() throws Exception {
    try (Sandbox parent = sandboxes.create(spec.withLabel("test", "fork"))) {
      parent.files().write("/workspace/shared.txt", "from the parent\n".getBytes(UTF_8));
      parent.run(COUNTER_LOOP);
      String parentMachineId = parent.run("cat /etc/machine-id 2>/dev/null").stdoutText();
      SandboxProcess ticker =
          parent.start(
              ExecRequest.script("while true; do echo tick; sleep 0.3; done", "sh"),
              OutputListener.NONE);
      parent.run("date -s @1000000000 >/dev/null"); // the copies must not keep this clock
      List<Sandbox> copies = parent.fork(2); // two: distinct from each other and the parent
      assertClockIsTheHosts(parent);
      try {
        assertEquals(2, copies.size());
        assertEquals(1, timed("agentvm.sandbox.fork", "outcome", "success"));
        Set<String> ids = new HashSet<>(List.of(parent.id()));
        Set<String> machineIds = new HashSet<>(List.of(parentMachineId));
        Set<String> randoms = new HashSet<>();
        for (Sandbox c : copies) {
          assertTrue(ids.add(c.id()));
          assertEquals(Map.of("test", "fork"), c.info().labels());
          assertEquals(
              "from the parent\n", new String(c.files().read("/workspace/shared.txt"), UTF_8));
          assertEquals(c.id(), c.exec("hostname").stdoutText().trim());
          assertTrue(machineIds.add(c.run("cat /etc/machine-id").stdoutText()));
          assertTrue(randoms.add(c.run("head -c 16 /dev/urandom | od -An -tx1").stdoutText()));
          assertCounts(c);
          assertClockIsTheHosts(c);
          // the copy has the parent's background process, under the same handle
          Captured ticks = new Captured();
          c.attach(ticker.handle(), ticks);
          waitFor(() -> ticks.toString().contains("tick"), Duration.ofSeconds(30));
        }
        assertTrue(ticker.isAlive());
        // writes in one copy are seen by none of the others nor the parent
        copies.get(0).run("echo mine > /workspace/only0");
        assertFalse(copies.get(1).files().exists("/workspace/only0"));
        assertFalse(parent.files().exists("/workspace/only0"));
        assertCounts(parent);
      } finally {
        for (Sandbox c : copies) {
          c.close();
        }
      }
    }
  }

  @Test
  void pausedSurvivesItsProcessRunningIsReapedAndRetentionEnds() throws Exception {
    String run = UUID.randomUUID().toString().substring(0, 8);
    Process child = TestVms.startJvm(SandboxOwnerMaker.class, run);
    String pausedId = null;
    String runningId = null;
    List<String> output = new ArrayList<>();
    try (BufferedReader r =
        new BufferedReader(new InputStreamReader(child.getInputStream(), UTF_8))) {
      long end = System.nanoTime() + TimeUnit.MINUTES.toNanos(4);
      String line;
      while (runningId == null && System.nanoTime() < end && (line = r.readLine()) != null) {
        output.add(line);
        if (line.startsWith("PAUSED ")) {
          pausedId = line.substring(7).trim();
        } else if (line.startsWith("RUNNING ")) {
          runningId = line.substring(8).trim();
        }
      }
      assertTrue(runningId != null && pausedId != null, String.join("\n", output));
      child.destroyForcibly(); // kill -9: no shutdown hook runs
      assertTrue(child.waitFor(30, TimeUnit.SECONDS));
    } finally {
      child.destroyForcibly();
    }
    // the next start reaps the running one (its owner is dead) and keeps the paused one
    sandboxes.close();
    sandboxes = Sandboxes.open(conn);
    String pid = pausedId;
    String rid = runningId;
    List<SandboxInfo> mine = sandboxes.list(Map.of("run", run));
    assertEquals(List.of(pid), mine.stream().map(SandboxInfo::id).toList());
    assertEquals(SandboxState.PAUSED, mine.get(0).state());
    assertFalse(
        conn.domainNames().contains(rid), "the dead owner's running sandbox was not reaped");
    assertThrows(NoSuchSandboxException.class, () -> sandboxes.connect(rid));

    Sandbox sb = sandboxes.connect(pid);
    assertEquals(SandboxState.PAUSED, sb.state());
    sb.resume();
    assertEquals("written before\n", new String(sb.files().read("/workspace/note.txt"), UTF_8));
    assertCounts(sb); // the loop started before the pause goes on counting
    sb.pause();
    // retention: kept before it ends, deleted after
    assertEquals(0, sandboxes.reap(Instant.now()));
    assertEquals(1, sandboxes.reap(Instant.now().plus(spec.pausedRetention()).plusSeconds(60)));
    assertEquals(List.of(), sandboxes.list(Map.of("run", run)));
    assertThrows(NoSuchSandboxException.class, () -> sandboxes.connect(pid));
  }

  @Test
  void aCallOnAPausedSandboxResumesIt() throws Exception {
    Sandbox sb = sandboxes.create(spec);
    try {
      sb.run("echo kept > /tmp/x");
      sb.pause();
      assertEquals(SandboxState.PAUSED, sb.state());
      assertFalse(conn.domainNames().contains(sb.id()), "a paused sandbox keeps no VM");
      Thread.sleep(3000); // a clock that stood still while paused would now be 3 s late
      assertEquals("kept\n", sb.run("cat /tmp/x").stdoutText());
      assertClockIsTheHosts(sb);
      assertEquals(SandboxState.RUNNING, sb.state());
      Path dir = sandboxes.dirOf(sb.id());
      sb.close();
      assertFalse(Files.exists(dir));
      assertEquals(SandboxState.CLOSED, sb.state());
      assertThrows(SandboxException.class, () -> sb.run("true"));
    } finally {
      sb.close(); // idempotent
    }
  }

  @Test
  void anIdleSandboxPausesAndItsNextCallResumesIt() throws Exception {
    try (Sandbox sb = sandboxes.create(spec.withIdleTimeout(Duration.ofSeconds(2)))) {
      sb.run("echo kept > /tmp/x");
      waitFor(() -> sb.state() == SandboxState.PAUSED, Duration.ofSeconds(60));
      assertFalse(conn.domainNames().contains(sb.id()));
      assertEquals("kept\n", sb.run("cat /tmp/x").stdoutText());
      assertEquals(SandboxState.RUNNING, sb.state());
    }
  }

  @Test
  void aLeaseEndsAsItsPolicySaysAndCanBeExtended() throws Exception {
    Sandbox sb =
        sandboxes.create(
            spec.withIdleTimeout(Duration.ZERO)
                .withLease(Duration.ofSeconds(3), SandboxSpec.LeaseEnd.CLOSE));
    try {
      sb.extendLease(Duration.ofSeconds(10));
      Thread.sleep(5000);
      assertEquals(SandboxState.RUNNING, sb.state(), "the extended lease had not ended yet");
      Path dir = sandboxes.dirOf(sb.id());
      waitFor(() -> sb.state() == SandboxState.CLOSED, Duration.ofSeconds(60));
      assertFalse(Files.exists(dir));
      assertFalse(conn.domainNames().contains(sb.id()));
    } finally {
      sb.close();
    }
  }

  @Test
  void aMemoryBudgetPausesTheLeastRecentlyUsedSandbox() throws Exception {
    sandboxes.memoryBudgetMiB(300); // room for one sandbox of 256 MiB
    try (Sandbox a = sandboxes.create(spec);
        Sandbox b = createAfter(a)) {
      assertEquals(SandboxState.PAUSED, a.state());
      assertEquals(SandboxState.RUNNING, b.state());
      assertEquals("a\n", a.run("cat /tmp/who").stdoutText()); // resumes a, pauses b
      assertEquals(SandboxState.RUNNING, a.state());
      assertEquals(SandboxState.PAUSED, b.state());
      assertEquals("b\n", b.run("cat /tmp/who").stdoutText());
    }
  }

  private Sandbox createAfter(Sandbox a) throws Exception {
    a.run("echo a > /tmp/who");
    Sandbox b = sandboxes.create(spec);
    b.run("echo b > /tmp/who");
    return b;
  }

  /**
   * The guest's wall clock is the host's, to the RTC's second and the command's own time: the agent
   * steps it only when it is over 1.5 s behind the RTC's whole second (GuestClock), so it may be up
   * to about 2.5 s late.
   */
  static void assertClockIsTheHosts(Sandbox sb) throws Exception {
    long before = System.currentTimeMillis() / 1000;
    long guest = Long.parseLong(sb.exec("date", "+%s").stdoutText().trim());
    long after = System.currentTimeMillis() / 1000;
    assertTrue(
        guest >= before - 3 && guest <= after + 2,
        "guest clock " + guest + " against the host's " + before + ".." + after);
  }

  private static void waitFor(java.util.function.BooleanSupplier what, Duration max)
      throws InterruptedException {
    long end = System.nanoTime() + max.toNanos();
    while (!what.getAsBoolean()) {
      assertTrue(System.nanoTime() < end, "not reached within " + max);
      Thread.sleep(200);
    }
  }

  /** Standard output collected from the agent's reader thread, read from the test's. */
  private static final class Captured implements OutputListener {
    private final StringBuilder text = new StringBuilder();

    @Override
    public synchronized void onStdout(byte[] chunk) {
      text.append(new String(chunk, UTF_8));
    }

    @Override
    public synchronized String toString() {
      return text.toString();
    }
  }

  /** The counter loop is alive: its number grows. */
  private static void assertCounts(Sandbox sb) throws Exception {
    long first = Long.parseLong(sb.run("cat /workspace/counter").stdoutText().trim());
    long later = first;
    for (int i = 0; i < 50 && later <= first; i++) {
      Thread.sleep(200);
      later = Long.parseLong(sb.run("cat /workspace/counter").stdoutText().trim());
    }
    assertNotEquals(first, later, "the counter stopped at " + first + " in " + sb.id());
  }
}
