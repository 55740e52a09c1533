package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FsEntry;
import dev.agentvm.protocol.FsEvent;
import dev.agentvm.protocol.FsListing;
import dev.agentvm.protocol.FsRequest;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.PayloadReader;
import dev.agentvm.protocol.PayloadWriter;
import dev.agentvm.protocol.ProcList;
import dev.agentvm.protocol.ProcRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The sandbox requests (FS_OP, WATCH, SPAWN, PROC) through the agent's request loop over in-memory
 * pipes, on this machine's file system and processes (the same java.nio and setsid calls the agent
 * makes in a guest; the real-VM proof is SandboxIT).
 */
class GuestSandboxOpsTest {
  @TempDir Path dir;
  private PipedAgent piped;
  private GuestAgent agent;
  private FrameReader replies;

  @BeforeEach
  void start() throws Exception {
    piped = new PipedAgent();
    agent = piped.agent;
    replies = piped.replies;
  }

  @AfterEach
  void stop() {
    piped.close();
  }

  private int send(MessageType type, byte[] payload) throws Exception {
    return piped.send(type, payload);
  }

  private Frame fs(FsRequest q) throws Exception {
    int id = send(MessageType.FS_OP, q.encode());
    Frame f = replies.read();
    assertEquals(id, f.requestId());
    return f;
  }

  private static ErrorCode code(Frame f) throws Exception {
    assertEquals(MessageType.ERROR.wire(), f.type(), "expected an ERROR, got " + f);
    return ErrorPayload.decode(f.payload()).code();
  }

  @Test
  void fileSystemOperations() throws Exception {
    String base = dir.toString();
    assertEquals(
        MessageType.FS_OP.wire(),
        fs(new FsRequest(FsRequest.Op.MKDIR, base + "/a/b", "", FsRequest.RECURSIVE, 0)).type());
    assertEquals(ErrorCode.ALREADY_EXISTS, code(fs(FsRequest.of(FsRequest.Op.MKDIR, base + "/a"))));
    Files.writeString(dir.resolve("a/f.txt"), "hello");
    Files.createSymbolicLink(dir.resolve("a/link"), dir.resolve("a/f.txt"));

    FsEntry st = FsEntry.decode(fs(FsRequest.of(FsRequest.Op.STAT, base + "/a/f.txt")).payload());
    assertEquals(FsEntry.Kind.FILE, st.kind());
    assertEquals(5, st.size());
    assertEquals(
        FsEntry.Kind.SYMLINK,
        FsEntry.decode(fs(FsRequest.of(FsRequest.Op.STAT, base + "/a/link")).payload()).kind());
    assertEquals(ErrorCode.NOT_FOUND, code(fs(FsRequest.of(FsRequest.Op.STAT, base + "/nope"))));
    assertEquals(ErrorCode.BAD_PATH, code(fs(FsRequest.of(FsRequest.Op.STAT, "relative"))));

    FsListing all =
        FsListing.decode(
            fs(new FsRequest(FsRequest.Op.LIST, base + "/a", "", 0, 10)).payload(), 10);
    assertEquals(List.of("b", "f.txt", "link"), all.entries().stream().map(FsEntry::name).toList());
    FsListing two =
        FsListing.decode(fs(new FsRequest(FsRequest.Op.LIST, base + "/a", "", 0, 2)).payload(), 2);
    assertTrue(two.truncated());
    assertEquals(2, two.entries().size());
    assertEquals(
        ErrorCode.NOT_A_DIRECTORY,
        code(fs(new FsRequest(FsRequest.Op.LIST, base + "/a/f.txt", "", 0, 5))));
    assertEquals(
        ErrorCode.NOT_FOUND, code(fs(new FsRequest(FsRequest.Op.LIST, base + "/x", "", 0, 5))));

    fs(new FsRequest(FsRequest.Op.RENAME, base + "/a/f.txt", base + "/a/b/g.txt", 0, 0));
    assertEquals("hello", Files.readString(dir.resolve("a/b/g.txt")));
    assertEquals(ErrorCode.NOT_EMPTY, code(fs(FsRequest.of(FsRequest.Op.REMOVE, base + "/a"))));
    fs(new FsRequest(FsRequest.Op.REMOVE, base + "/a", "", FsRequest.RECURSIVE, 0));
    assertTrue(Files.notExists(dir.resolve("a")));
    assertTrue(Files.exists(dir), "a removed tree must not take its parent");
  }

  @Test
  void aWatchReportsChangesUntilKilled() throws Exception {
    int id = send(MessageType.WATCH, new PayloadWriter().string(dir.toString()).toByteArray());
    Frame ack = replies.read();
    assertEquals(MessageType.WATCH.wire(), ack.type());
    assertEquals(0, ack.payload().length);
    Files.writeString(dir.resolve("new.txt"), "x");
    Frame ev = replies.read();
    assertEquals(id, ev.requestId());
    FsEvent e = FsEvent.decode(ev.payload());
    assertEquals(new FsEvent(FsEvent.Kind.CREATED, "new.txt"), e);
    send(MessageType.KILL, new PayloadWriter().i32(id).toByteArray());
    // the KILL's answer and the watch's END frame, in either order (MODIFY events may come first)
    boolean ended = false;
    boolean killed = false;
    while (!(ended && killed)) {
      Frame f = replies.read();
      if (f.type() == MessageType.KILL.wire()) {
        killed = true;
      } else if (f.type() == MessageType.WATCH.wire() && (f.flags() & Frame.FLAG_END) != 0) {
        ended = true;
      }
    }
    int bad = send(MessageType.WATCH, new PayloadWriter().string(dir + "/missing").toByteArray());
    Frame err = replies.read();
    assertEquals(bad, err.requestId());
    assertEquals(ErrorCode.NOT_FOUND, code(err));
  }

  private static ExecSpec spec(String script) {
    return new ExecSpec(
        List.of("sh", "-c", script), "", Map.of(), "", new byte[0], 0, 1 << 20, 500);
  }

  @Test
  void backgroundProcessesTakeInputReplayOutputAndCanBeKilled() throws Exception {
    int id =
        send(
            MessageType.SPAWN,
            spec("read l; echo \"got $l\"; read m; echo \"then $m\"; exit 3").encode());
    Frame answer = replies.read();
    assertEquals(MessageType.SPAWN.wire(), answer.type());
    PayloadReader r = new PayloadReader(answer.payload());
    int handle = r.i32();
    r.end();

    send(
        MessageType.PROC,
        new ProcRequest(ProcRequest.Op.STDIN, handle, "one\n".getBytes(StandardCharsets.UTF_8))
            .encode());
    StringBuilder out = new StringBuilder();
    while (!out.toString().contains("got one")) {
      Frame f = replies.read();
      if (f.type() == MessageType.STDOUT.wire()) {
        assertEquals(id, f.requestId());
        out.append(new String(f.payload(), StandardCharsets.UTF_8));
      }
    }
    int list = send(MessageType.PROC, ProcRequest.of(ProcRequest.Op.LIST, 0).encode());
    Frame listed = replies.read();
    while (listed.requestId() != list) {
      listed = replies.read();
    }
    ProcList procs = ProcList.decode(listed.payload());
    assertEquals(1, procs.processes().size());
    assertTrue(procs.processes().get(0).running());

    // the host goes away: the process keeps running and its output is kept for the next one
    agent.stopAll("host disconnected");
    send(
        MessageType.PROC,
        new ProcRequest(ProcRequest.Op.STDIN, handle, "two\n".getBytes(StandardCharsets.UTF_8))
            .encode());
    assertEquals(MessageType.PROC.wire(), replies.read().type()); // the STDIN's answer
    Thread.sleep(500);
    int attach = send(MessageType.PROC, ProcRequest.of(ProcRequest.Op.ATTACH, handle).encode());
    StringBuilder replay = new StringBuilder();
    ExitStatus exit = null;
    while (exit == null) {
      Frame f = replies.read();
      if (f.requestId() != attach) {
        continue;
      }
      if (f.type() == MessageType.STDOUT.wire()) {
        replay.append(new String(f.payload(), StandardCharsets.UTF_8));
      } else if (f.type() == MessageType.EXIT.wire()) {
        exit = ExitStatus.decode(f.payload());
      }
    }
    assertEquals("then two\n", replay.toString());
    assertEquals(3, exit.exitCode());

    // KILL signals the process's group (found in /proc, no external kill), here as in a guest
    int sleeper = send(MessageType.SPAWN, spec("exec sleep 2").encode());
    Frame s = replies.read();
    int sh = new PayloadReader(s.payload()).i32();
    send(MessageType.PROC, ProcRequest.of(ProcRequest.Op.KILL, sh).encode());
    ExitStatus killed = null;
    while (killed == null) {
      Frame f = replies.read();
      if (f.requestId() == sleeper && f.type() == MessageType.EXIT.wire()) {
        killed = ExitStatus.decode(f.payload());
      }
    }
    assertTrue(killed.durationMillis() < 30_000);
    assertTrue(killed.signal() != 0 || killed.exitCode() != 0, "killed by a signal: " + killed);
    int missing = send(MessageType.PROC, ProcRequest.of(ProcRequest.Op.KILL, 999).encode());
    Frame nf = replies.read();
    while (nf.requestId() != missing) {
      nf = replies.read();
    }
    assertEquals(ErrorCode.NOT_FOUND, code(nf));
  }

  private Frame answerTo(int id) throws Exception {
    Frame f = replies.read();
    while (f.requestId() != id || f.type() == MessageType.STDOUT.wire()) {
      f = replies.read();
    }
    return f;
  }

  @Test
  void inputAfterCloseIsRefusedAndFinishedProcessesMakeRoomForNewOnes() throws Exception {
    int id = send(MessageType.SPAWN, spec("cat >/dev/null; echo done").encode());
    int handle = new PayloadReader(answerTo(id).payload()).i32();
    int close = send(MessageType.PROC, ProcRequest.of(ProcRequest.Op.CLOSE_STDIN, handle).encode());
    assertEquals(MessageType.PROC.wire(), answerTo(close).type());
    int late =
        send(
            MessageType.PROC,
            new ProcRequest(ProcRequest.Op.STDIN, handle, new byte[] {'x'}).encode());
    assertEquals(ErrorCode.UNSUPPORTED_OPERATION, code(answerTo(late)));

    // the table holds ProcList.MAX processes; finished ones whose exit nobody collected (the
    // host went away meanwhile) give way to new ones
    // (they end when told, after the host went away: however long spawning them took)
    List<Integer> handles = new java.util.ArrayList<>();
    for (int i = 0; i < ProcList.MAX; i++) {
      handles.add(
          new PayloadReader(answerTo(send(MessageType.SPAWN, spec("read x").encode())).payload())
              .i32());
    }
    agent.stopAll("host disconnected");
    for (int h : handles) {
      answerTo(send(MessageType.PROC, ProcRequest.of(ProcRequest.Op.CLOSE_STDIN, h).encode()));
    }
    List<ProcList.Entry> listed = List.of();
    for (int i = 0; i < 300; i++) {
      int list = send(MessageType.PROC, ProcRequest.of(ProcRequest.Op.LIST, 0).encode());
      listed = ProcList.decode(answerTo(list).payload()).processes();
      if (listed.stream().noneMatch(ProcList.Entry::running)) {
        break;
      }
      Thread.sleep(100);
    }
    assertEquals(ProcList.MAX, listed.size());
    assertTrue(listed.stream().noneMatch(ProcList.Entry::running), "all ended");
    int more = send(MessageType.SPAWN, spec("exit 0").encode());
    assertEquals(MessageType.SPAWN.wire(), answerTo(more).type(), "no room made for a new process");
  }
}
