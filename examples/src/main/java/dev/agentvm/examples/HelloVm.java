package dev.agentvm.examples;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.core.ShutdownResult;
import dev.agentvm.core.VM;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.protocol.HelloResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;

/**
 * Boots one VM from the micro image, prints the guest agent's HELLO and the boot phases with their
 * times, runs a small sample agent in the guest (an input file in, a result file out), prints its
 * result, shuts the VM down gracefully and cleans up.
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
        AgentClient agent = vm.awaitAgent(Duration.ofMinutes(2));
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
        // A sample agent: gets an input file, runs in the guest under a deadline, leaves a result
        // file.
        Path work = Files.createTempDirectory("agentvm-hello");
        try {
          Path input = work.resolve("input.txt");
          Files.writeString(input, "the quick brown fox jumps over the lazy dog\nthe dog sleeps\n");
          agent.putFile(input, "/work/input.txt", 0644, Duration.ofSeconds(30));
          String sampleAgent =
              """
              cd /work
              echo "agent running on $(uname -n), kernel $(uname -r)"
              tr ' ' '\\n' < input.txt | grep -v '^$' | sort | uniq -c | sort -rn | head -3 > top-words.txt
              echo "words: $(wc -w < input.txt)"
              """;
          long tExec = System.nanoTime();
          ExecResult result =
              agent.exec(ExecRequest.script(sampleAgent, "sh").withTimeout(Duration.ofMinutes(1)));
          long execMs = ms(System.nanoTime() - tExec);
          Path output = work.resolve("top-words.txt");
          agent.getFile("/work/top-words.txt", output, Duration.ofSeconds(30));
          System.out.printf("sample agent: exit %d in %d ms%n", result.exitCode(), execMs);
          System.out.print(result.stdoutText().indent(2));
          System.out.println("  result file top-words.txt:");
          System.out.print(Files.readString(output).indent(4));
        } finally {
          try (var files = Files.list(work)) {
            for (Path f : files.toList()) {
              Files.delete(f);
            }
          }
          Files.delete(work);
        }
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
