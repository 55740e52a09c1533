package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.Protocol;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** Boots real VMs from the micro image (TCG on hosts where KVM cannot boot a kernel). */
class VmLifecycleIT extends RealLibvirtTest {
  @Test
  void bootsAnswersHelloShutsDownGracefullyAndLeavesNothing() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("hello")).boot(TestVms.boot()).build();
    VM vm = conn.define(t);
    try {
      assertEquals(VMState.DEFINED, vm.state());
      assertTrue(Files.isDirectory(t.runDir()));
      vm.start();
      assertEquals(VMState.RUNNING, vm.state());
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
      HelloResponse hello = agent.hello();
      assertEquals(Protocol.VERSION, hello.version());
      assertEquals(TestVms.image().kernelRelease(), hello.kernelRelease());
      assertTrue(
          hello.initUptimeMillis() > 0
              && hello.agentStartUptimeMillis() >= hello.initUptimeMillis()
              && hello.uptimeMillis() >= hello.agentStartUptimeMillis(),
          hello.toString());
      assertTrue(agent.ping(Duration.ofSeconds(5)).toMillis() < 5000);
      assertTrue(Files.readString(vm.consoleLog()).contains("agentvm-init: start"));

      assertThrows(VmStateException.class, vm::start, "starting a running VM");
      assertThrows(VmStateException.class, vm::undefine, "undefining a running VM");

      agent.close(); // a caller done with its client: the power-off request connects anew
      assertEquals(ShutdownResult.GRACEFUL, vm.shutdown(Duration.ofSeconds(30)));
      assertEquals(VMState.STOPPED, vm.state());
    } finally {
      vm.close();
    }
    assertEquals(VMState.UNDEFINED, vm.state());
    TestVms.assertNothingLeft(conn, t);
    vm.close(); // idempotent
  }

  @Test
  void qemuKilledIsCrashedAndCloseStillCleansUp() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("crash")).boot(TestVms.boot()).build();
    VM vm = conn.define(t);
    try {
      vm.start();
      Path pidFile = Path.of("/run/libvirt/qemu/" + t.name() + ".pid");
      assertTrue(
          waitFor(() -> Files.exists(pidFile), Duration.ofSeconds(10)), "no pid file " + pidFile);
      long pid = Long.parseLong(Files.readString(pidFile).trim());
      var agent = vm.awaitAgent(Duration.ofSeconds(90));
      var running =
          agent.execAsync(
              dev.agentvm.core.agent.ExecRequest.command("sleep", "600"),
              dev.agentvm.core.agent.OutputListener.NONE);
      ProcessHandle.of(pid).orElseThrow().destroyForcibly();
      long t0 = System.nanoTime();
      // the command's deadline is 10 minutes away: the dead channel must fail it now
      assertThrows(
          dev.agentvm.core.agent.AgentChannelClosedException.class,
          () -> running.await(Duration.ofMinutes(10)));
      assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "failed fast");
      assertTrue(
          vm.waitForState(VMState.CRASHED, Duration.ofSeconds(20)), "state is " + vm.state());
      assertEquals(ShutdownResult.ALREADY_STOPPED, vm.shutdown(Duration.ofSeconds(1)));
    } finally {
      vm.close();
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void resourceSettingsTakeEffectInTheLiveGuest() throws Exception {
    VMTemplate t =
        VMTemplate.builder(TestVms.name("res"))
            .resources(new ResourceProfile(2, 384))
            .boot(TestVms.boot())
            .build();
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
      var cpus =
          agent.exec(
              dev.agentvm.core.agent.ExecRequest.script("grep -c ^processor /proc/cpuinfo", "sh"));
      assertEquals("2", cpus.stdoutText().trim(), "the guest's CPUs");
      long memKiB = agent.status(Duration.ofSeconds(10)).memTotalKiB();
      // MemTotal is what the guest has after the kernel's own reservations: a bit under 384 MiB
      assertTrue(
          memKiB > 384 * 1024 * 0.85 && memKiB <= 384 * 1024, "guest MemTotal " + memKiB + " KiB");

      // what the host measures, whatever the guest says: seconds of busy loop are CPU time (the
      // loop runs 3-4 s by the guest's clock; a contended host gives QEMU a part of that)
      VmStats before = vm.stats();
      assertTrue(before.rssKiB() > 0, "QEMU's resident memory: " + before);
      agent.exec(
          dev.agentvm.core.agent.ExecRequest.script(
              "end=$(($(date +%s)+4)); while [ $(date +%s) -lt $end ]; do :; done", "sh"));
      VmStats after = vm.stats();
      assertTrue(
          after.cpuTime().minus(before.cpuTime()).toMillis() >= 900,
          "a busy guest used CPU: " + before + " -> " + after);
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void aVmResumedInRamHasTheHostsTimeAgain() throws Exception {
    // in the agent's own process, through the image's native library: no process started
    assertResumedClockIsTheHosts(TestVms.boot(), "clock_settime");
  }

  @Test
  void anAgentWithoutTheNativeLibrarySetsTheClockWithDate() throws Exception {
    // what a user's own disk image does: the property names no library
    assertResumedClockIsTheHosts(
        TestVms.boot().withExtraCmdline("agentvm.java_opts=-Dagentvm.guest.native="), "date");
  }

  @Test
  void theAgentsClassesComeFromTheRuntimesCdsArchive() throws Exception {
    // the image's runtime holds the agent as a module, archived with its lambdas (issue 19): a
    // class loaded from anywhere else was parsed and verified in the guest, at TCG's pace
    VMTemplate t =
        VMTemplate.builder(TestVms.name("cds"))
            .boot(
                TestVms.boot()
                    .withExtraCmdline("agentvm.java_opts=-Xlog:class+load:file=/tmp/classes.log"))
            .build();
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
      agent.exec(dev.agentvm.core.agent.ExecRequest.command("true"));
      String loaded =
          agent
              .exec(
                  dev.agentvm.core.agent.ExecRequest.command(
                      "grep", " dev\\.agentvm\\.", "/tmp/classes.log"))
              .stdoutText();
      java.util.List<String> lines = loaded.lines().toList();
      assertTrue(
          lines.stream().anyMatch(l -> l.contains(" dev.agentvm.guest.agent.GuestAgent source:")),
          loaded);
      assertTrue(lines.stream().anyMatch(l -> l.contains("$$Lambda")), "lambdas: " + loaded);
      java.util.List<String> notArchived =
          lines.stream().filter(l -> !l.endsWith("source: shared objects file")).toList();
      assertEquals(
          java.util.List.of(),
          notArchived,
          "agent classes loaded outside the archive: re-record the image's agent.classlist with"
              + " dev.agentvm.benchmarks.AgentClassList");
    }
    TestVms.assertNothingLeft(conn, t);
  }

  private void assertResumedClockIsTheHosts(BootSource boot, String setter) throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("clock")).boot(boot).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      var agent = vm.awaitAgent(Duration.ofSeconds(90));
      vm.pause();
      Thread.sleep(3000); // the guest's clock stands still meanwhile
      vm.resume();
      long before = System.currentTimeMillis() / 1000;
      long guest =
          Long.parseLong(
              agent
                  .exec(dev.agentvm.core.agent.ExecRequest.command("date", "+%s"))
                  .stdoutText()
                  .trim());
      long after = System.currentTimeMillis() / 1000;
      assertTrue(
          guest >= before - 2 && guest <= after + 2,
          "guest clock " + guest + " against the host's " + before + ".." + after);
      // the console reaches its file through the guest's tty, QEMU and virtlogd: give it time
      String said = "ms to the RTC with " + setter + " in";
      long end = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      String console = Files.readString(vm.consoleLog());
      while (!console.contains(said) && System.nanoTime() < end) {
        Thread.sleep(200);
        console = Files.readString(vm.consoleLog());
      }
      assertTrue(console.contains(said), console);
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void aResumeWhoseAgentNeverAnswersReturnsAndTheNextCallFailsTyped() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("mute")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      AgentClient agent = vm.awaitAgent(Duration.ofSeconds(90));
      // the agent JVM stops itself a moment after this command has answered: a guest that hangs
      agent.exec(
          dev.agentvm.core.agent.ExecRequest.script(
              "p=$PPID; (sleep 1; kill -STOP $p) >/dev/null 2>&1 &", "sh"));
      long end = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      boolean mute = false;
      while (!mute && System.nanoTime() < end) {
        try {
          agent.ping(Duration.ofSeconds(1));
        } catch (dev.agentvm.core.agent.AgentTimeoutException e) {
          mute = true;
        }
      }
      assertTrue(mute, "the agent stopped answering");
      vm.pause();
      long t0 = System.nanoTime();
      assertTimeoutPreemptively(Duration.ofSeconds(60), vm::resume); // waits, warns, returns
      long waitedMs = (System.nanoTime() - t0) / 1_000_000;
      assertTrue(waitedMs >= 9_000, "resume waited for the agent's HELLO: " + waitedMs + " ms");
      assertEquals(VMState.RUNNING, vm.state());
      assertThrows(
          dev.agentvm.core.agent.AgentTimeoutException.class,
          () -> agent.ping(Duration.ofSeconds(2)));
      vm.destroy(); // nothing in it would answer a graceful power-off
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void pausedVmIsForcedOffByShutdown() {
    VMTemplate t = VMTemplate.builder(TestVms.name("pause")).boot(TestVms.boot()).build();
    try (VM vm = conn.define(t)) {
      vm.start();
      vm.pause();
      assertEquals(VMState.PAUSED, vm.state());
      vm.resume();
      assertEquals(VMState.RUNNING, vm.state());
      vm.pause();
      assertEquals(ShutdownResult.FORCED, vm.shutdown(Duration.ofSeconds(5)));
      assertEquals(VMState.STOPPED, vm.state());
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void closeOnAnInterruptedThreadStillRemovesTheVmAndKeepsTheInterrupt() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("intr")).boot(TestVms.boot()).build();
    VM vm = conn.define(t);
    vm.start();
    vm.awaitAgent(Duration.ofSeconds(90)); // so that the graceful phase is short
    Thread.currentThread().interrupt(); // as an executor's shutdownNow does to a thread making it
    try {
      vm.close();
      assertTrue(Thread.currentThread().isInterrupted(), "the caller's interrupt is kept");
    } finally {
      Thread.interrupted();
    }
    TestVms.assertNothingLeft(conn, t);
  }

  private static boolean waitFor(java.util.function.BooleanSupplier c, Duration d)
      throws InterruptedException {
    long end = System.nanoTime() + d.toNanos();
    while (System.nanoTime() < end) {
      if (c.getAsBoolean()) {
        return true;
      }
      Thread.sleep(50);
    }
    return c.getAsBoolean();
  }
}
