package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.PayloadWriter;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@link GuestExchangesTest}'s exchanges with the agent's native library loaded, as in the micro
 * image: commands are started by one {@code posix_spawn} and watched by the worker alone (one
 * {@code poll} over the output pipes and a pidfd), not by pump and reaper threads.
 */
@Timeout(60)
@ExtendWith(NativeLibrary.class)
class GuestExchangesNativeTest extends GuestExchangesTest {
  @BeforeAll
  static void pidfdWorks() {
    // the path under test needs pidfd_open (Linux 5.3); without it the agent uses threads
    int fd = NativeHelpers.pidfdOpen(ProcessHandle.current().pid());
    assertTrue(fd >= 0, "pidfd_open on this kernel: " + fd);
    NativeHelpers.closeFd(fd);
  }

  /** While a command that writes nothing runs, a PING is answered at once and a KILL ends it. */
  @Test
  void aPingIsAnsweredAndAKillEndsASilentCommandWhileItRuns() throws Exception {
    try (PipedAgent agent = new PipedAgent()) {
      int id =
          agent.send(
              MessageType.EXEC,
              new ExecSpec(
                      List.of("sleep", "20"),
                      "",
                      java.util.Map.of(),
                      "",
                      new byte[0],
                      0,
                      1 << 20,
                      2000)
                  .encode());
      Thread.sleep(300); // the command started
      long t0 = System.nanoTime();
      Frame pong = agent.ask(MessageType.PING, new byte[] {1});
      assertEquals(MessageType.PONG.wire(), pong.type());
      assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "the PING waited for the command");
      Frame ack = agent.ask(MessageType.KILL, new PayloadWriter().i32(id).toByteArray());
      assertEquals(MessageType.KILL.wire(), ack.type());
      Frame exit = agent.answerTo(id);
      assertEquals(MessageType.EXIT.wire(), exit.type());
      assertTrue(ExitStatus.decode(exit.payload()).killed());
    }
  }
}
