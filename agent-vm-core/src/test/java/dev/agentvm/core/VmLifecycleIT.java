package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
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

      // what the host measures, whatever the guest says: a second of busy loop is CPU time
      VmStats before = vm.stats();
      assertTrue(before.rssKiB() > 0, "QEMU's resident memory: " + before);
      agent.exec(
          dev.agentvm.core.agent.ExecRequest.script(
              "end=$(($(date +%s)+2)); while [ $(date +%s) -lt $end ]; do :; done", "sh"));
      VmStats after = vm.stats();
      assertTrue(
          after.cpuTime().minus(before.cpuTime()).toMillis() >= 900,
          "a busy guest used CPU: " + before + " -> " + after);
    }
    TestVms.assertNothingLeft(conn, t);
  }

  @Test
  void aVmResumedInRamHasTheHostsTimeAgain() throws Exception {
    VMTemplate t = VMTemplate.builder(TestVms.name("clock")).boot(TestVms.boot()).build();
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
      // in the agent's own process, through the image's native library: no process started
      String console = java.nio.file.Files.readString(vm.consoleLog());
      assertTrue(console.contains("ms to the RTC with clock_settime"), console);
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
