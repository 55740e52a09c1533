package dev.agentvm.core;

import static dev.agentvm.core.RawAgentChannel.frame;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Two hundred hosts in a row that connect, send a HELLO and a 48 KiB PING, and hang up without
 * reading. The guest sees their bytes as one stream cut at random places, so a half frame is left
 * waiting for bytes its host will never send; the next host, which repeats its HELLO until it is
 * answered, must be served within the frame deadline (docs/protocol.md), not wait for good.
 */
class HostHangUpIT extends RealLibvirtTest {

  @Test
  void hostsThatHangUpBeforeReadingCannotWedgeTheAgent() throws Exception {
    VMTemplate t =
        VMTemplate.builder(TestVms.name("hangup"))
            .resources(new ResourceProfile(1, 512))
            .boot(TestVms.boot())
            .build();
    try (VM vm = conn.define(t)) {
      vm.start();
      vm.awaitAgent(Duration.ofSeconds(90)).close();
      byte[] ping = frame(0x02, 0, 7, new byte[48 * 1024]);
      for (int i = 0; i < 200; i++) {
        try (SocketChannel ch = RawAgentChannel.connect(t.agentSocket(), Duration.ofSeconds(30))) {
          ch.write(ByteBuffer.wrap(frame(0x01, 0, 1000 + i, RawAgentChannel.helloPayload("gone"))));
          ch.write(ByteBuffer.wrap(ping));
        }
      }
      long start = System.nanoTime();
      try (AgentClient agent = vm.awaitAgent(Duration.ofSeconds(60))) {
        System.out.printf(
            "HostHangUpIT: agent answered %d ms after the last hang-up%n",
            (System.nanoTime() - start) / 1_000_000);
        assertEquals(
            "ok\n",
            agent
                .exec(ExecRequest.command("echo", "ok").withTimeout(Duration.ofSeconds(30)))
                .stdoutText());
      }
    }
    TestVms.assertNothingLeft(conn, t);
  }
}
