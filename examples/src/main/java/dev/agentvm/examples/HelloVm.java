package dev.agentvm.examples;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ShutdownResult;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.guest.image.MicroImage;
import dev.agentvm.guest.image.MicroImageBuilder;
import dev.agentvm.protocol.HelloResponse;
import java.time.Duration;
import java.util.UUID;

/**
 * Boots one VM from the micro image, prints the guest agent's HELLO and the boot phases with their
 * times, shuts the VM down gracefully and cleans up.
 */
public final class HelloVm {
  public static void main(String[] args) throws Exception {
    long t0 = System.nanoTime();
    MicroImage image = MicroImageBuilder.create().build();
    long tImage = System.nanoTime();
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      VMTemplate template =
          VMTemplate.builder("agentvm-hello-" + UUID.randomUUID().toString().substring(0, 8))
              .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE))
              .build();
      long tDefine0 = System.nanoTime();
      try (VM vm = conn.define(template)) {
        long tDefined = System.nanoTime();
        vm.start();
        long tStarted = System.nanoTime();
        AgentClient agent = vm.awaitAgent(Duration.ofSeconds(120));
        long tReady = System.nanoTime();
        HelloResponse hello = agent.hello();
        Duration rtt = agent.ping(Duration.ofSeconds(5));

        System.out.printf("VM %s (%s, %s)%n", vm.name(), vm.virtType(), conn.uri());
        System.out.printf(
            "agent HELLO: protocol %d, agent %s, kernel %s, capabilities %s%n",
            hello.version(), hello.agentVersion(), hello.kernelRelease(), hello.capabilities());
        System.out.println("boot phases:");
        System.out.printf("  image ready (build or cache)   %7d ms%n", ms(tImage - t0));
        System.out.printf("  define + virt type resolution  %7d ms%n", ms(tDefined - tDefine0));
        System.out.printf("  QEMU start (libvirt create)    %7d ms%n", ms(tStarted - tDefined));
        System.out.printf("  kernel to /init  (guest clock) %7d ms%n", hello.initUptimeMillis());
        System.out.printf(
            "  /init to agent JVM start       %7d ms%n",
            hello.agentStartUptimeMillis() - hello.initUptimeMillis());
        System.out.printf(
            "  agent JVM start to HELLO       %7d ms%n",
            hello.uptimeMillis() - hello.agentStartUptimeMillis());
        System.out.printf("  start to agent ready (host)    %7d ms%n", ms(tReady - tStarted));
        System.out.printf("  ping round trip                %7.2f ms%n", rtt.toNanos() / 1e6);
        long tStop = System.nanoTime();
        ShutdownResult r = vm.shutdown(Duration.ofSeconds(30));
        System.out.printf("shutdown: %s in %d ms%n", r, ms(System.nanoTime() - tStop));
      }
    }
  }

  private static long ms(long nanos) {
    return nanos / 1_000_000;
  }
}
