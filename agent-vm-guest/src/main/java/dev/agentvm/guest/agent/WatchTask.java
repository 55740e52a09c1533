package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.FsEvent;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.ProtocolException;
import java.io.IOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchEvent;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;

/** One WATCH: a directory's changes as WATCH frames until it is stopped or the host goes. */
final class WatchTask {
  private final int id;
  private final Path dir;
  private final FrameWriter out;
  private final WatchService ws;

  WatchTask(int id, String path, FrameWriter out) throws IOException {
    this.id = id;
    this.dir = FileTransfer.checkedPath(path);
    this.out = out;
    if (!Files.isDirectory(dir)) {
      if (!Files.exists(dir)) {
        throw new ProtocolException(ErrorCode.NOT_FOUND, "watch of " + dir + ": does not exist");
      }
      throw new ProtocolException(
          ErrorCode.NOT_A_DIRECTORY, "watch of " + dir + ": not a directory");
    }
    this.ws = dir.getFileSystem().newWatchService();
    try {
      dir.register(
          ws,
          StandardWatchEventKinds.ENTRY_CREATE,
          StandardWatchEventKinds.ENTRY_MODIFY,
          StandardWatchEventKinds.ENTRY_DELETE);
    } catch (IOException e) {
      ws.close();
      throw UserErrors.translate(e, "watch of " + dir);
    }
  }

  /** Answers the WATCH, then forwards events until {@link #stop}; ends with an END frame. */
  void run() throws IOException, InterruptedException {
    out.write(Frame.response(MessageType.WATCH, id, new byte[0]));
    try {
      while (true) {
        WatchKey key = ws.take();
        for (WatchEvent<?> e : key.pollEvents()) {
          FsEvent ev = toEvent(e);
          out.write(Frame.response(MessageType.WATCH, id, ev.encode()));
        }
        if (!key.reset()) {
          break; // the directory went away
        }
      }
    } catch (ClosedWatchServiceException e) {
      // stopped
    } finally {
      ws.close();
      try {
        out.write(
            new Frame(
                MessageType.WATCH.wire(), Frame.FLAG_RESPONSE | Frame.FLAG_END, id, new byte[0]));
      } catch (IOException e) {
        // the host went away: nobody to tell
      }
    }
  }

  private static FsEvent toEvent(WatchEvent<?> e) {
    WatchEvent.Kind<?> k = e.kind();
    String name = e.context() instanceof Path p ? p.toString() : "";
    if (k == StandardWatchEventKinds.ENTRY_CREATE) {
      return new FsEvent(FsEvent.Kind.CREATED, name);
    }
    if (k == StandardWatchEventKinds.ENTRY_MODIFY) {
      return new FsEvent(FsEvent.Kind.MODIFIED, name);
    }
    if (k == StandardWatchEventKinds.ENTRY_DELETE) {
      return new FsEvent(FsEvent.Kind.DELETED, name);
    }
    return new FsEvent(FsEvent.Kind.OVERFLOW, "");
  }

  void stop() {
    try {
      ws.close();
    } catch (IOException e) {
      GuestAgent.log("closing the watch of " + dir + ": " + e);
    }
  }
}
