package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.EgressSpec;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.PayloadWriter;
import dev.agentvm.protocol.StreamFrame;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The agent's egress relay, in-process: loopback connections become streams, bytes pass both ways
 * within the window, ends and resets are relayed, the stream limit answers 503, KILL ends it all.
 */
@Timeout(60)
class GuestEgressTest {
  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }

  /** The next STREAM frame of {@code id} from the agent (other frames are skipped). */
  private static StreamFrame next(PipedAgent a, int id) throws IOException {
    while (true) {
      Frame f = a.replies.read();
      if (f.requestId() == id && f.type() == MessageType.STREAM.wire()) {
        assertTrue(f.isResponse());
        return StreamFrame.decode(f.payload());
      }
    }
  }

  private static void toGuest(PipedAgent a, int id, StreamFrame f) throws IOException {
    a.host.write(Frame.request(MessageType.STREAM, id, f.encode()));
  }

  @Test
  void aConnectionIsRelayedBothWaysAndEnds() throws Exception {
    int port = freePort();
    try (PipedAgent a = new PipedAgent()) {
      int id = a.send(MessageType.EGRESS, new EgressSpec(port, 32768, 2).encode());
      Frame ok = a.answerTo(id);
      assertEquals(MessageType.EGRESS.wire(), ok.type());
      assertEquals(0, ok.payload().length);
      try (Socket client = new Socket(InetAddress.getLoopbackAddress(), port)) {
        assertEquals(StreamFrame.open(1), next(a, id));
        client
            .getOutputStream()
            .write("GET http://x/ HTTP/1.1\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        StreamFrame up = next(a, id);
        assertEquals(StreamFrame.Op.DATA, up.op());
        assertEquals(
            "GET http://x/ HTTP/1.1\r\n\r\n", new String(up.data(), StandardCharsets.US_ASCII));
        byte[] answer = "HTTP/1.1 403 Forbidden\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
        toGuest(a, id, StreamFrame.data(1, answer));
        toGuest(a, id, StreamFrame.close(1));
        InputStream in = client.getInputStream();
        assertArrayEquals(answer, in.readNBytes(answer.length));
        assertEquals(StreamFrame.window(1, answer.length), next(a, id), "credit once written");
        assertEquals(-1, in.read(), "the host's CLOSE is the client's end of stream");
        client.shutdownOutput();
        assertEquals(StreamFrame.close(1), next(a, id));
      }
      // the second connection gets the next id; a RESET from the host closes it
      try (Socket client = new Socket(InetAddress.getLoopbackAddress(), port)) {
        assertEquals(StreamFrame.open(2), next(a, id));
        toGuest(a, id, StreamFrame.reset(2, "denied"));
        assertEquals(-1, client.getInputStream().read());
      }
      assertEquals(
          MessageType.KILL.wire(),
          a.ask(MessageType.KILL, new PayloadWriter().i32(id).toByteArray()).type());
      // a STREAM frame of the reset connection may still be on its way (the guest's side of its
      // end races the KILL): the last EGRESS follows whatever STREAM frames are left
      Frame last = a.answerTo(id);
      while (last.type() == MessageType.STREAM.wire()) {
        last = a.answerTo(id);
      }
      assertEquals(MessageType.EGRESS.wire(), last.type());
      assertTrue((last.flags() & Frame.FLAG_END) != 0);
    }
  }

  @Test
  void theStreamLimitAndBrokenRulesAreRefused() throws Exception {
    int port = freePort();
    try (PipedAgent a = new PipedAgent()) {
      int id = a.send(MessageType.EGRESS, new EgressSpec(port, 32768, 1).encode());
      a.answerTo(id);
      try (Socket first = new Socket(InetAddress.getLoopbackAddress(), port);
          Socket second = new Socket(InetAddress.getLoopbackAddress(), port)) {
        assertEquals(StreamFrame.open(1), next(a, id));
        String refused =
            new String(second.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
        assertTrue(refused.startsWith("HTTP/1.1 503"), refused);
        assertTrue(refused.contains("1 egress connections open already"), refused);
        // frames of a stream that does not exist are dropped; an OPEN from the host breaks the
        // rules
        toGuest(a, id, StreamFrame.data(7, new byte[10]));
        toGuest(a, id, StreamFrame.open(1));
        assertEquals(
            StreamFrame.reset(1, "the host opened a stream the guest opened"), next(a, id));
        first.setSoTimeout(10_000);
        assertEquals(-1, first.getInputStream().read());
      }
      // a new EGRESS replaces this one: the old one's END comes first
      int port2 = freePort();
      int id2 = a.send(MessageType.EGRESS, new EgressSpec(port2, 32768, 1).encode());
      Frame end = a.answerTo(id);
      assertTrue((end.flags() & Frame.FLAG_END) != 0);
      assertEquals(MessageType.EGRESS.wire(), a.answerTo(id2).type());
      try (Socket c = new Socket(InetAddress.getLoopbackAddress(), port2)) {
        assertEquals(StreamFrame.open(1), next(a, id2));
        assertTrue(c.isConnected());
      }
      // a port that is taken is an error, not a hang
      try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        Frame err =
            a.ask(MessageType.EGRESS, new EgressSpec(taken.getLocalPort(), 32768, 1).encode());
        assertEquals(MessageType.ERROR.wire(), err.type());
      }
    }
  }
}
