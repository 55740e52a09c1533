package dev.agentvm.execution.sandbox;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.FsEntry;
import dev.agentvm.protocol.FsListing;
import dev.agentvm.protocol.FsRequest;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.PayloadReader;
import dev.agentvm.protocol.PayloadWriter;
import dev.agentvm.protocol.Protocol;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A lying guest agent, run inside a real guest in place of the real one (SandboxHostileAgentIT): it
 * takes over the agent's port and answers listings and file reads with what no honest agent sends.
 * Which lie depends on the directory asked for. java.base and the protocol classes only: it runs on
 * the guest's runtime, with the agent's jar on its class path.
 */
public final class HostileAgent {
  private HostileAgent() {}

  public static void main(String[] args) throws Exception {
    Path port = Path.of(args[0]);
    RandomAccessFile dev = null;
    while (dev == null) { // the real agent holds the port until it is killed
      try {
        dev = new RandomAccessFile(port.toFile(), "rw");
      } catch (IOException busy) {
        Thread.sleep(20);
      }
    }
    Files.writeString(Path.of("/tmp/hostile.ready"), "port taken\n");
    FrameReader in = new FrameReader(new FileInputStream(dev.getFD()));
    FrameWriter out = new FrameWriter(new FileOutputStream(dev.getFD()));
    while (true) {
      Frame f = in.read();
      if (f == null) {
        Thread.sleep(20); // no host connected
        continue;
      }
      try {
        answer(f, out);
      } catch (IOException | RuntimeException e) {
        out.write(error(f.requestId(), ErrorCode.INTERNAL, String.valueOf(e)));
      }
    }
  }

  private static Frame error(int id, ErrorCode code, String message) {
    return Frame.response(MessageType.ERROR, id, new ErrorPayload(code, message).encode());
  }

  private static void answer(Frame f, FrameWriter out) throws IOException {
    int id = f.requestId();
    MessageType type = f.messageType().orElse(null);
    if (type == MessageType.PING) {
      out.write(Frame.response(MessageType.PONG, id, f.payload()));
    } else if (type == MessageType.HELLO) {
      out.write(
          Frame.response(
              MessageType.HELLO,
              id,
              new dev.agentvm.protocol.HelloResponse(
                      Protocol.VERSION, "hostile", List.of(), "x", 0, 0, 0)
                  .encode()));
    } else if (type == MessageType.FS_OP) {
      FsRequest q = FsRequest.decode(f.payload());
      out.write(Frame.response(MessageType.FS_OP, id, listing(q.path())));
    } else if (type == MessageType.GET_FILE) {
      PayloadReader r = new PayloadReader(f.payload());
      String path = r.string();
      // announced as 10 bytes in the listing; two MiB come, whatever the host's limit
      byte[] chunk = new byte[256 * 1024];
      for (int i = 0; i < 8; i++) {
        out.write(new Frame(MessageType.FILE_DATA.wire(), Frame.FLAG_RESPONSE, id, chunk));
      }
      out.write(
          new Frame(
              MessageType.FILE_DATA.wire(), Frame.FLAG_RESPONSE | Frame.FLAG_END, id, new byte[0]));
      out.write(
          Frame.response(
              MessageType.GET_FILE,
              id,
              new FileHeader(path, 0644, 8L * chunk.length, "00".repeat(32)).encode()));
    } else {
      out.write(
          error(id, ErrorCode.UNSUPPORTED_OPERATION, "the hostile agent does not answer this"));
    }
  }

  /** The lie for each directory. */
  private static byte[] listing(String path) {
    if (path.startsWith("/workspace/count")) {
      // more entries than any limit the host asked for
      return new PayloadWriter().u8(0).i32(1_000_000).toByteArray();
    }
    FsEntry e;
    if (path.startsWith("/workspace/escape")) {
      e = file("../escaped");
    } else if (path.startsWith("/workspace/slash")) {
      e = file("a/b");
    } else if (path.startsWith("/workspace/nul")) {
      e = file("x\0y");
    } else if (path.startsWith("/workspace/dotdot")) {
      e = new FsEntry("..", FsEntry.Kind.DIRECTORY, 0, 0755, 0);
    } else if (path.startsWith("/workspace/loop")) {
      e = new FsEntry("d", FsEntry.Kind.DIRECTORY, 0, 0755, 0); // the same, at every level
    } else {
      e = file("big"); // /workspace/grow: announced small, sent large
    }
    return new FsListing(List.of(e), false).encode();
  }

  private static FsEntry file(String name) {
    return new FsEntry(name, FsEntry.Kind.FILE, 10, 0644, 0);
  }
}
