package dev.agentvm.guest.agent;

import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.nio.file.Path;

/**
 * A guest agent served in-process over in-memory pipes, on this host's file system and processes,
 * with the host's end of the channel: the unit tests' stand-in for a VM's virtio-serial port.
 */
final class PipedAgent implements AutoCloseable {
  final GuestAgent agent = new GuestAgent(Path.of("/dev/null"), 1000, 2000);
  final FrameWriter host;
  final FrameReader replies;
  private final Thread loop;
  private int nextId = 1;

  PipedAgent() throws IOException {
    PipedOutputStream toAgent = new PipedOutputStream();
    PipedInputStream agentIn = new PipedInputStream(toAgent, 1 << 20);
    PipedInputStream fromAgent = new PipedInputStream(1 << 20);
    PipedOutputStream agentOut = new PipedOutputStream(fromAgent);
    loop =
        new Thread(
            () -> {
              try {
                agent.serveConnection(agentIn, new FrameWriter(agentOut));
              } catch (IOException | InterruptedException e) {
                // interrupted or the pipe closed at the end of the test
              }
            },
            "piped-agent");
    loop.setDaemon(true);
    loop.start();
    host = new FrameWriter(toAgent);
    replies = new FrameReader(fromAgent);
  }

  /** Sends a request and returns its id. */
  int send(MessageType type, byte[] payload) throws IOException {
    int id = nextId++;
    host.write(Frame.request(type, id, payload));
    return id;
  }

  /** Sends a request and returns the first answer to it that is not output or file data. */
  Frame ask(MessageType type, byte[] payload) throws IOException {
    return answerTo(send(type, payload));
  }

  /** Reads until the first answer to {@code id} that is not output or file data. */
  Frame answerTo(int id) throws IOException {
    while (true) {
      Frame f = replies.read();
      if (f.requestId() == id
          && f.type() != MessageType.STDOUT.wire()
          && f.type() != MessageType.STDERR.wire()
          && f.type() != MessageType.FILE_DATA.wire()) {
        return f;
      }
    }
  }

  @Override
  public void close() {
    agent.stopAll("test over");
    loop.interrupt();
  }
}
