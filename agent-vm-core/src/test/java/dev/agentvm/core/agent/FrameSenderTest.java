package dev.agentvm.core.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.MessageType;
import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A write that fails ends the channel, and says so with the channel-closed type. */
class FrameSenderTest {
  @Test
  void aFailedWriteClosesTheChannelWithTheTypeCallersMapToTheirHost() throws Exception {
    IOException cause = new IOException("libvirt stream send failed: client socket is closed");
    OutputStream broken =
        new OutputStream() {
          @Override
          public void write(int b) throws IOException {
            throw cause;
          }

          @Override
          public void write(byte[] b, int off, int len) throws IOException {
            throw cause;
          }
        };
    CompletableFuture<IOException> told = new CompletableFuture<>();
    FrameSender sender = new FrameSender(broken, "test-channel", told::complete);
    try {
      CompletableFuture<Void> written =
          sender.send(Frame.request(MessageType.PING, 1, new byte[0]));
      ExecutionException e =
          assertThrows(ExecutionException.class, () -> written.get(10, TimeUnit.SECONDS));
      AgentChannelClosedException closed =
          assertInstanceOf(AgentChannelClosedException.class, e.getCause());
      assertSame(cause, closed.getCause());
      assertTrue(closed.getMessage().contains("test-channel"), closed.getMessage());
      assertSame(closed, told.get(10, TimeUnit.SECONDS), "the client is told the same");
      // later frames fail at once, with the same cause
      CompletableFuture<Void> next = sender.send(Frame.request(MessageType.PING, 2, new byte[0]));
      ExecutionException later =
          assertThrows(ExecutionException.class, () -> next.get(10, TimeUnit.SECONDS));
      assertEquals(closed, later.getCause());
    } finally {
      sender.close();
    }
  }
}
