package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.ExitStatus;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.MountSpec;
import dev.agentvm.protocol.PayloadWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14: a request's ordinary failures come back with their own error code and a message in the
 * user's terms (no Java exception text), and payloads with trailing bytes are refused. The agent
 * runs in-process over pipes, on this host's file system.
 */
class GuestAgentErrorsTest {
  @TempDir Path dir;
  private PipedAgent piped;
  private FrameWriter host;
  private FrameReader replies;
  private int nextId = 100;

  @BeforeEach
  void startAgent() throws IOException {
    piped = new PipedAgent();
    host = piped.host;
    replies = piped.replies;
  }

  @AfterEach
  void stopAgent() {
    piped.close();
  }

  /** Sends a request and returns the first answer that is not output. */
  private Frame ask(MessageType type, byte[] payload) throws IOException {
    return piped.ask(type, payload);
  }

  private ErrorPayload error(MessageType type, byte[] payload) throws IOException {
    Frame f = ask(type, payload);
    assertEquals(MessageType.ERROR.wire(), f.type(), "expected ERROR, got " + f);
    ErrorPayload e = ErrorPayload.decode(f.payload());
    assertFalse(e.message().contains("java."), "Java exception text: " + e.message());
    assertFalse(e.message().startsWith(e.code().name()), "code twice: " + e.message());
    return e;
  }

  private static byte[] exec(String cwd, String... argv) {
    return new ExecSpec(List.of(argv), "", Map.of(), cwd, new byte[0], 30_000, 1 << 20, 100)
        .encode();
  }

  private static void assertError(ErrorCode code, String mentions, ErrorPayload e) {
    assertEquals(code, e.code(), e.toString());
    assertTrue(e.message().contains(mentions), e.message());
  }

  @Test
  void execWithAMissingOrNonDirectoryWorkingDirectory() throws Exception {
    String missing = dir.resolve("no/such/dir").toString();
    assertError(ErrorCode.NOT_FOUND, missing, error(MessageType.EXEC, exec(missing, "true")));
    Path file = Files.writeString(dir.resolve("a-file"), "x");
    assertError(
        ErrorCode.NOT_A_DIRECTORY,
        file.toString(),
        error(MessageType.EXEC, exec(file.toString(), "true")));
  }

  @Test
  void execOfACommandThatIsNotThereOrNotExecutable() throws Exception {
    assertError(
        ErrorCode.COMMAND_NOT_FOUND,
        "no-such-command-xyz",
        error(MessageType.EXEC, exec("", "no-such-command-xyz", "arg")));
    assertError(
        ErrorCode.COMMAND_NOT_FOUND,
        "/no/such/binary",
        error(MessageType.EXEC, exec("", "/no/such/binary")));
    Path plain = Files.writeString(dir.resolve("not-exec.sh"), "echo hi\n");
    assertError(
        ErrorCode.NOT_EXECUTABLE,
        plain.toString(),
        error(MessageType.EXEC, exec("", plain.toString())));
    assertError(
        ErrorCode.NOT_EXECUTABLE,
        dir.toString(),
        error(MessageType.EXEC, exec("", dir.toString())));
    // relative to the working directory, as execvp sees it
    Files.setPosixFilePermissions(plain, PosixFilePermissions.fromString("rwxr-xr-x"));
    Frame ok = ask(MessageType.EXEC, exec(dir.toString(), "./not-exec.sh"));
    assertEquals(MessageType.EXIT.wire(), ok.type(), ok.toString());
    assertEquals(0, ExitStatus.decode(ok.payload()).exitCode());
    // a PATH in the request's environment is the one searched
    Frame viaPath =
        ask(
            MessageType.EXEC,
            new ExecSpec(
                    List.of("not-exec.sh"),
                    "",
                    Map.of("PATH", dir.toString()),
                    "",
                    new byte[0],
                    30_000,
                    1 << 20,
                    100)
                .encode());
    assertEquals(MessageType.EXIT.wire(), viaPath.type(), viaPath.toString());
  }

  @Test
  void pathSearchSkipsWhatCannotRunAndNamesItWhenNothingCan() throws Exception {
    Path a = Files.createDirectories(dir.resolve("path-a"));
    Path b = Files.createDirectories(dir.resolve("path-b"));
    Files.createDirectories(a.resolve("tool-dir")); // a directory is passed over silently
    Files.writeString(a.resolve("tool"), "echo a\n");
    String path = a + ":" + b;
    assertError(
        ErrorCode.NOT_EXECUTABLE,
        a.resolve("tool").toString(),
        error(MessageType.EXEC, execWithPath(path, "tool")));
    assertError(
        ErrorCode.COMMAND_NOT_FOUND,
        "tool-dir",
        error(MessageType.EXEC, execWithPath(path, "tool-dir")));
    Path runnable = Files.writeString(b.resolve("tool"), "#!/bin/sh\nexit 7\n");
    Files.setPosixFilePermissions(runnable, PosixFilePermissions.fromString("rwxr-xr-x"));
    Frame ran = ask(MessageType.EXEC, execWithPath(path, "tool"));
    assertEquals(MessageType.EXIT.wire(), ran.type(), ran.toString());
    assertEquals(7, ExitStatus.decode(ran.payload()).exitCode()); // b's, after a's refused one
    // an empty PATH element is the working directory
    Frame here = ask(MessageType.EXEC, execWithPath(":/nonexistent", "tool", b.toString()));
    assertEquals(7, ExitStatus.decode(here.payload()).exitCode(), here.toString());
  }

  private static byte[] execWithPath(String path, String command) {
    return execWithPath(path, command, "");
  }

  private static byte[] execWithPath(String path, String command, String cwd) {
    return new ExecSpec(
            List.of(command), "", Map.of("PATH", path), cwd, new byte[0], 30_000, 1 << 20, 100)
        .encode();
  }

  private static byte[] get(String path) {
    return new PayloadWriter().string(path).i64(1 << 20).toByteArray();
  }

  @Test
  void getFileOfABadMissingOrSpecialPath() throws Exception {
    assertError(ErrorCode.BAD_PATH, "relative/x", error(MessageType.GET_FILE, get("relative/x")));
    String missing = dir.resolve("missing.txt").toString();
    assertError(ErrorCode.NOT_FOUND, missing, error(MessageType.GET_FILE, get(missing)));
    assertError(
        ErrorCode.IS_A_DIRECTORY, dir.toString(), error(MessageType.GET_FILE, get(dir.toString())));
    assertError(
        ErrorCode.NOT_A_REGULAR_FILE, "/dev/null", error(MessageType.GET_FILE, get("/dev/null")));
  }

  private static byte[] put(String path) {
    return new FileHeader(
            path, 0644, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        .encode();
  }

  @Test
  void putFileOntoADirectoryUnderAFileOrARelativePath() throws Exception {
    assertError(ErrorCode.BAD_PATH, "x.txt", error(MessageType.PUT_FILE, put("x.txt")));
    assertError(
        ErrorCode.IS_A_DIRECTORY, dir.toString(), error(MessageType.PUT_FILE, put(dir.toString())));
    Path file = Files.writeString(dir.resolve("plain"), "x");
    assertError(
        ErrorCode.NOT_A_DIRECTORY,
        file.toString(),
        error(MessageType.PUT_FILE, put(file.resolve("below.txt").toString())));
  }

  @Test
  void putFileWithoutPermission() throws Exception {
    // root may write almost anywhere, but not new files into sysfs
    String target = "/sys/kernel/agentvm-test-" + ProcessHandle.current().pid() + ".txt";
    assertError(ErrorCode.PERMISSION_DENIED, target, error(MessageType.PUT_FILE, put(target)));
    String below = "/sys/kernel/agentvm-test-" + ProcessHandle.current().pid() + "/x.txt";
    assertError(
        ErrorCode.PERMISSION_DENIED, "/sys/kernel", error(MessageType.PUT_FILE, put(below)));
  }

  @Test
  void mountOnAPathUnderAFile() throws Exception {
    Path file = Files.writeString(dir.resolve("plain"), "x");
    byte[] m = new MountSpec("no-such-tag", file.resolve("mnt").toString(), true).encode();
    assertError(ErrorCode.NOT_A_DIRECTORY, file.toString(), error(MessageType.MOUNT, m));
    assertError(
        ErrorCode.BAD_PATH,
        "mnt",
        error(MessageType.MOUNT, new MountSpec("t", "mnt", false).encode()));
  }

  @Test
  void trailingPayloadBytesAreRefused() throws Exception {
    byte[] kill = new PayloadWriter().i32(12345).u8(0).toByteArray();
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, error(MessageType.KILL, kill).code());
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, error(MessageType.STATUS, new byte[] {0}).code());
    // (SHUTDOWN is not tried here: if the check failed, the agent would power off this host)
    byte[] getWithTail = new PayloadWriter().string("/etc/hostname").i64(10).u8(7).toByteArray();
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, error(MessageType.GET_FILE, getWithTail).code());
    byte[] execWithTail = concat(exec("", "true"), new byte[] {0});
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, error(MessageType.EXEC, execWithTail).code());
    byte[] putWithTail = concat(put("/tmp/x"), new byte[] {0, 0});
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, error(MessageType.PUT_FILE, putWithTail).code());
    byte[] mountWithTail = concat(new MountSpec("t", "/mnt/x", true).encode(), new byte[] {0});
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, error(MessageType.MOUNT, mountWithTail).code());
    // the agent still serves
    assertEquals(MessageType.PONG.wire(), ask(MessageType.PING, new byte[] {1}).type());
  }

  @Test
  void killOfNoRunningCommandIsNotFound() throws Exception {
    byte[] kill = new PayloadWriter().i32(424242).toByteArray();
    assertError(ErrorCode.NOT_FOUND, "424242", error(MessageType.KILL, kill));
  }

  @Test
  void nulBytesAndBadVariableNamesInAnExecAreMalformedNotInternal() throws Exception {
    assertError(
        ErrorCode.MALFORMED_PAYLOAD,
        "argument 1",
        error(MessageType.EXEC, exec("", "echo", "a\0b")));
    byte[] badName =
        new ExecSpec(List.of("true"), "", Map.of("A=B", "x"), "", new byte[0], 0, 1, 0).encode();
    assertError(ErrorCode.MALFORMED_PAYLOAD, "A=B", error(MessageType.EXEC, badName));
    byte[] nulValue =
        new ExecSpec(List.of("true"), "", Map.of("V", "a\0"), "", new byte[0], 0, 1, 0).encode();
    assertError(ErrorCode.MALFORMED_PAYLOAD, "V", error(MessageType.EXEC, nulValue));
  }

  @Test
  void answersFromTheHostAreIgnoredNotAnswered() throws Exception {
    // an ERROR and a PING with the response flag: neither is answered; the next PING is
    host.write(
        Frame.response(
            MessageType.ERROR, 7, new ErrorPayload(ErrorCode.INTERNAL, "stray").encode()));
    host.write(Frame.response(MessageType.PING, 8, new byte[] {1}));
    Frame f = ask(MessageType.PING, new byte[] {2});
    assertEquals(MessageType.PONG.wire(), f.type());
    assertEquals(2, f.payload()[0]);
  }

  @Test
  void aSecondPutFileWithAnIdInUseIsRefused() throws Exception {
    byte[] put = put(dir.resolve("dup.txt").toString());
    int id = nextId++;
    host.write(Frame.request(MessageType.PUT_FILE, id, put));
    Frame ready = replies.read();
    assertEquals(MessageType.PUT_FILE.wire(), ready.type(), ready.toString());
    host.write(Frame.request(MessageType.PUT_FILE, id, put));
    Frame dup = replies.read();
    assertEquals(MessageType.ERROR.wire(), dup.type(), dup.toString());
    assertEquals(ErrorCode.MALFORMED_PAYLOAD, ErrorPayload.decode(dup.payload()).code());
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
