package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The native library's port read and chunked SHA-256, on the build machine. */
class NativeIoTest {
  @TempDir static Path dir;

  @BeforeAll
  static void load() throws Exception {
    NativeLibrary.compileAndLoad(dir);
  }

  @AfterAll
  static void forget() {
    NativeHelpers.forget();
  }

  private static String nativeSha(byte[] data, List<Integer> cuts) {
    FileTransfer.ChunkHash h = FileTransfer.ChunkHash.start().orElseThrow();
    int off = 0;
    for (int cut : cuts) {
      int n = Math.min(cut, data.length - off);
      h.update(java.util.Arrays.copyOfRange(data, off, off + n));
      off += n;
    }
    h.update(java.util.Arrays.copyOfRange(data, off, data.length));
    return h.hex();
  }

  private static String javaSha(byte[] data) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
  }

  /** Waits as the agent does, again after an interrupted wait (0 before the timeout). */
  private static int await(FileDescriptor out, FileDescriptor err, int pidfd) {
    int r;
    do {
      r = NativeHelpers.awaitCommand(out, err, pidfd, 10_000);
    } while (r == 0);
    return r;
  }

  @Test
  void aCommandsWaitSeesItsOutputItsEndAndItsTimeout() throws Exception {
    FileDescriptor closed = new FileDescriptor(); // fd -1: left out of the wait
    long t0 = System.nanoTime();
    assertEquals(0, NativeHelpers.awaitCommand(closed, closed, -1, 50), "a timeout");
    assertTrue(System.nanoTime() - t0 >= 40_000_000L, "waited the timeout");
    SessionProcess p =
        SessionProcess.spawnUnwatched(
                Path.of("/bin/sh"),
                List.of("sh", "-c", "echo out; read line; echo err >&2"),
                java.util.Map.of(),
                dir)
            .orElseThrow();
    int pidfd = p.openPidfd();
    try {
      assertTrue(pidfd >= 0, "pidfd_open on this kernel");
      FileDescriptor out = p.rawStdout().getFD();
      FileDescriptor err = p.rawStderr().getFD();
      assertEquals(NativeHelpers.STDOUT_READY, await(out, err, pidfd));
      assertEquals("out\n", readOnce(p.rawStdout())); // FileInputStream's readNBytes seeks
      assertTrue(!p.hasEnded(), "it waits for its input");
      p.getOutputStream().write("go\n".getBytes(StandardCharsets.UTF_8));
      p.getOutputStream().flush();
      while ((await(closed, closed, pidfd) & NativeHelpers.ENDED) == 0) {
        // only the end is waited for here
      }
      assertTrue(p.hasEnded(), "ended, not yet reaped");
      assertEquals(0, p.reapEnded());
      assertTrue(p.hasEnded(), "reaped");
      assertTrue((await(out, err, -1) & NativeHelpers.STDERR_READY) != 0);
      assertEquals("err\n", readOnce(p.rawStderr()));
    } finally {
      p.signalGroup(true, new java.util.concurrent.atomic.AtomicBoolean()); // if it failed early
      p.reapEnded();
      NativeHelpers.closeFd(pidfd);
      p.rawStdout().close();
      p.rawStderr().close();
    }
  }

  @Test
  void theNativeLookupFindsWhatTheJavaLookupFindsAndNothingElse() throws Exception {
    Path root = Files.createDirectories(dir.resolve("lookup"));
    Path a = Files.createDirectories(root.resolve("a"));
    Path b = Files.createDirectories(root.resolve("b"));
    Path d = Files.createDirectories(root.resolve("d"));
    executable(a.resolve("x"), true);
    executable(a.resolve("y"), false);
    executable(b.resolve("y"), true);
    Files.createDirectories(b.resolve("z"));
    executable(d.resolve("x"), false);
    Files.createSymbolicLink(d.resolve("w"), a.resolve("x"));
    Files.createSymbolicLink(b.resolve("w"), root.resolve("gone"));
    List<String> entries =
        List.of(
            a.toString(), b.toString(), root.resolve("c").toString(), d + "/", "a", "b", "", "d");
    List<String> names =
        List.of("x", "y", "z", "w", "v", "./a/x", "a/y", b.resolve("y").toString());
    List<Path> cwds = List.of(root, a, root.resolve("missing"), a.resolve("x"));
    java.util.concurrent.atomic.AtomicInteger hits =
        new java.util.concurrent.atomic.AtomicInteger();
    qt().withExamples(300)
        .forAll(
            lists().of(integers().between(0, entries.size() - 1)).ofSizeBetween(0, 4),
            integers().between(0, names.size() - 1),
            integers().between(0, cwds.size() - 1))
        .checkAssert(
            (picked, n, c) -> {
              StringBuilder path = new StringBuilder();
              for (int i = 0; i < picked.size(); i++) {
                path.append(i == 0 ? "" : ":").append(entries.get(picked.get(i)));
              }
              Path cwd = cwds.get(c);
              String name = names.get(n);
              java.util.Optional<Path> fast = UserErrors.findNatively(cwd, name, path.toString());
              String why = cwd + " " + name + " PATH=" + path;
              try {
                Path slow = UserErrors.lookUp(cwd, name, path.toString());
                assertTrue(fast.isPresent(), "the native lookup missed " + slow + ": " + why);
                assertEquals(slow.normalize(), fast.get().normalize(), why);
                hits.incrementAndGet();
              } catch (dev.agentvm.protocol.ProtocolException e) {
                assertTrue(fast.isEmpty(), "found " + fast + " where Java says " + e + ": " + why);
              }
            });
    assertTrue(hits.get() > 30, "too few examples found a command: " + hits);
    // a NUL byte would cut the name short: nothing is found
    assertTrue(UserErrors.findNatively(root, "a/x\0junk", "").isEmpty());
    assertTrue(UserErrors.findNatively(Path.of("relative"), "x", a.toString()).isEmpty());
  }

  private static void executable(Path file, boolean runnable) throws IOException {
    Files.writeString(file, "#!/bin/sh\n");
    Files.setPosixFilePermissions(
        file,
        java.nio.file.attribute.PosixFilePermissions.fromString(
            runnable ? "rwxr-xr-x" : "rw-r--r--"));
  }

  private static String readOnce(FileInputStream in) throws IOException {
    byte[] b = new byte[64];
    int n = in.read(b);
    return new String(b, 0, Math.max(0, n), StandardCharsets.UTF_8);
  }

  @Test
  void theHashMatchesFips180Vectors() {
    assertEquals(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        nativeSha(new byte[0], List.of()));
    assertEquals(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        nativeSha("abc".getBytes(StandardCharsets.US_ASCII), List.of(1, 1)));
    assertEquals(
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        nativeSha(
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
                .getBytes(StandardCharsets.US_ASCII),
            List.of(55)));
  }

  @Test
  void theHashOfAnyBytesCutAnywhereIsJavasSha256() {
    // sizes around the 64-byte block and the 56-byte padding boundary, cut into arbitrary chunks
    qt().withExamples(300)
        .forAll(
            integers().between(0, 1000), lists().of(integers().between(0, 200)).ofSizeBetween(0, 8))
        .checkAssert(
            (size, cuts) -> {
              byte[] data = new byte[size];
              new Random(size * 31L + cuts.hashCode()).nextBytes(data);
              try {
                assertEquals(javaSha(data), nativeSha(data, cuts), size + " bytes cut " + cuts);
              } catch (Exception e) {
                throw new AssertionError(e);
              }
            });
  }

  @Test
  void aFileIsHashedWholeAndAMissingOneIsAnError() throws Exception {
    for (int size : new int[] {0, 63, 64, 65, 256 * 1024, 256 * 1024 + 1, 700_001}) {
      byte[] data = new byte[size];
      new Random(size).nextBytes(data);
      Path f = dir.resolve("whole-" + size);
      Files.write(f, data);
      byte[] d = new byte[32];
      NativeHelpers.shaFile(f.toString().getBytes(StandardCharsets.UTF_8), d);
      assertEquals(javaSha(data), HexFormat.of().formatHex(d), size + " bytes");
      assertEquals(javaSha(data), FileTransfer.nativeSha256(f), size + " bytes");
    }
    IOException e =
        assertThrows(
            IOException.class,
            () ->
                NativeHelpers.shaFile(
                    "/nonexistent-agentvm".getBytes(StandardCharsets.UTF_8), new byte[32]));
    assertTrue(e.getMessage().contains("nonexistent-agentvm"), e.getMessage());
    Path fifo = dir.resolve("hash-fifo");
    assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
    IOException notFile =
        assertThrows(IOException.class, () -> FileTransfer.nativeSha256(fifo)); // no wait on it
    assertTrue(notFile.getMessage().contains("not a regular file"), notFile.getMessage());
    assertTrue(NativeHelpers.isLoaded(), "the native path was the one tested");
  }

  @Test
  void anEndedHashTakesNoMoreAndOutOfRangeChunksAreRefused() {
    FileTransfer.ChunkHash h = FileTransfer.ChunkHash.start().orElseThrow();
    h.update(new byte[3]);
    h.hex();
    assertThrows(IllegalStateException.class, () -> h.update(new byte[1]));
    assertThrows(IllegalStateException.class, h::hex);
    java.nio.ByteBuffer state = java.nio.ByteBuffer.allocateDirect(NativeHelpers.shaStateSize());
    NativeHelpers.shaInit(state);
    assertThrows(
        ArrayIndexOutOfBoundsException.class,
        () -> NativeHelpers.shaUpdate(state, new byte[10], 5, 6));
    assertThrows(
        ArrayIndexOutOfBoundsException.class,
        () -> NativeHelpers.shaUpdate(state, new byte[10], -1, 2));
  }

  @Test
  void aStateBufferTooSmallIsRefusedNotOverrun() {
    java.nio.ByteBuffer small = java.nio.ByteBuffer.allocateDirect(8);
    assertThrows(IllegalArgumentException.class, () -> NativeHelpers.shaInit(small));
    java.nio.ByteBuffer heap = java.nio.ByteBuffer.allocate(1024); // no address: capacity -1
    assertThrows(IllegalArgumentException.class, () -> NativeHelpers.shaInit(heap));
  }

  @Test
  void aReadWaitsForTheFirstBytesTakesWhatIsReadyAndEndsWithMinusOne() throws Exception {
    Path fifo = dir.resolve("fifo");
    assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
    java.util.concurrent.CountDownLatch firstRead = new java.util.concurrent.CountDownLatch(1);
    CompletableFuture<Void> writer =
        CompletableFuture.runAsync(
            () -> {
              try (FileOutputStream out = new FileOutputStream(fifo.toFile())) {
                Thread.sleep(200); // the reader is waiting by now
                out.write("first".getBytes(StandardCharsets.US_ASCII));
                firstRead.await(); // a short first read is handed over without waiting for more
                out.write("second".getBytes(StandardCharsets.US_ASCII));
              } catch (IOException | InterruptedException e) {
                throw new IllegalStateException(e);
              }
            });
    try (FileInputStream in = new FileInputStream(fifo.toFile())) {
      FileDescriptor fd = in.getFD();
      byte[] buf = new byte[64];
      StringBuilder got = new StringBuilder();
      int n;
      n = NativeHelpers.readAvailable(fd, buf, 3, 40);
      assertEquals("first", new String(buf, 3, n, StandardCharsets.US_ASCII));
      firstRead.countDown();
      while ((n = NativeHelpers.readAvailable(fd, buf, 3, 40)) >= 0) {
        got.append(new String(buf, 3, n, StandardCharsets.US_ASCII));
      }
      assertThrows(
          ArrayIndexOutOfBoundsException.class,
          () -> NativeHelpers.readAvailable(fd, buf, 60, 40),
          "a range outside the buffer is refused before anything is read");
      assertEquals("second", got.toString());
      writer.get();
      assertEquals(-1, NativeHelpers.readAvailable(fd, buf, 0, 64), "the end stays the end");
    }
  }

  @Test
  void aReadOfAFileFillsTheBufferAndAClosedDescriptorIsAnError() throws Exception {
    byte[] data = new byte[100_000];
    new Random(7).nextBytes(data);
    Path f = dir.resolve("data");
    Files.write(f, data);
    byte[] buf = new byte[70_000];
    FileInputStream in = new FileInputStream(f.toFile());
    FileDescriptor fd = in.getFD();
    assertEquals(70_000, NativeHelpers.readAvailable(fd, buf, 0, buf.length));
    assertArrayEquals(java.util.Arrays.copyOf(data, 70_000), buf);
    in.close();
    assertThrows(IOException.class, () -> NativeHelpers.readAvailable(fd, buf, 0, buf.length));
  }
}
