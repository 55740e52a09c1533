package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.ProtocolException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/** PUT_FILE and GET_FILE in the guest. */
final class FileTransfer {
  static final int CHUNK = 256 * 1024;
  private static final Frame ABORT = new Frame(0, 0, 0, new byte[0]);

  private FileTransfer() {}

  static Path checkedPath(String p) throws ProtocolException {
    if (p.isEmpty() || p.charAt(0) != '/' || p.indexOf('\0') >= 0) {
      throw new ProtocolException(
          ErrorCode.BAD_PATH, "path must be absolute and without NUL: '" + p + "'");
    }
    return Path.of(p).normalize();
  }

  /**
   * An incoming file. The reader thread {@link #offer}s its FILE_DATA frames (a bounded queue: a
   * fast host waits rather than filling the guest's memory); {@link #run} writes them to a
   * temporary file beside the target and renames it into place only when size and SHA-256 match.
   */
  static final class Put {
    final int id;
    final FileHeader header;
    final Path target;
    private final Path dir;
    private final FrameWriter out;
    private final BlockingQueue<Frame> chunks = new ArrayBlockingQueue<>(8);

    Put(int id, FileHeader header, long maxSize, FrameWriter out) throws ProtocolException {
      this.id = id;
      this.header = header;
      this.out = out;
      this.target = checkedPath(header.path());
      Path parent = target.getParent(); // null only for "/"
      if (parent == null || Files.isDirectory(target)) {
        throw new ProtocolException(ErrorCode.IS_A_DIRECTORY, target + " is a directory");
      }
      this.dir = parent;
      if (header.size() > maxSize) {
        throw new ProtocolException(
            ErrorCode.FRAME_TOO_LARGE,
            "file of " + header.size() + " bytes exceeds the agent's limit of " + maxSize);
      }
    }

    private volatile boolean finished;
    private volatile boolean aborted;

    /**
     * Hands a chunk to the writer, waiting while its queue is full (backpressure), but never for a
     * writer that has stopped: the reader thread must not hang on a dead transfer.
     */
    void offer(Frame chunk) throws InterruptedException {
      while (!finished) {
        if (chunks.offer(chunk, 100, TimeUnit.MILLISECONDS)) {
          return;
        }
      }
    }

    void abort() {
      aborted = true; // seen at the next chunk when ABORT cannot be queued
      if (!chunks.offer(ABORT)) {
        // the queue is full, so the writer is not waiting for a chunk: it stops at the next one
        GuestAgent.log("transfer " + id + " aborted with chunks still queued");
      }
    }

    // ReferenceEquality: ABORT is a sentinel object; a real chunk equal to it must not abort
    @SuppressWarnings("ReferenceEquality")
    private static boolean isAbort(Frame f) {
      return f == ABORT;
    }

    void run() throws IOException, InterruptedException {
      try {
        receive();
      } catch (IOException e) {
        throw UserErrors.translate(e, "writing " + target);
      } finally {
        finished = true;
        chunks.clear();
      }
    }

    private void receive() throws IOException, InterruptedException {
      Files.createDirectories(dir);
      Path tmp = dir.resolve("." + target.getFileName() + ".agentvm-" + id + ".part");
      boolean done = false;
      try (FileChannel ch =
          FileChannel.open(
              tmp,
              StandardOpenOption.CREATE,
              StandardOpenOption.TRUNCATE_EXISTING,
              StandardOpenOption.WRITE)) {
        out.write(Frame.response(MessageType.PUT_FILE, id, new byte[0])); // ready for data
        long size = 0;
        Optional<ChunkHash> sha = ChunkHash.start();
        while (true) {
          Frame f = chunks.poll(60, TimeUnit.SECONDS);
          if (f == null || aborted || isAbort(f)) {
            // the agent's own message, not a Java exception's text (this is INTERNAL, not the
            // user's)
            throw new ProtocolException(
                ErrorCode.INTERNAL,
                "transfer of " + target + " aborted: no data for 60 s, or the host disconnected");
          }
          size += f.payload().length;
          if (size > header.size()) {
            throw new ProtocolException(
                ErrorCode.MALFORMED_PAYLOAD,
                "more data than the announced " + header.size() + " bytes");
          }
          ByteBuffer b = ByteBuffer.wrap(f.payload());
          while (b.hasRemaining()) {
            ch.write(b);
          }
          if (sha.isPresent()) {
            sha.get().update(f.payload());
          }
          if ((f.flags() & Frame.FLAG_END) != 0) {
            break;
          }
        }
        ch.force(true);
        String got = sha.isPresent() ? sha.get().hex() : nativeSha256(tmp);
        if (size != header.size() || !got.equalsIgnoreCase(header.sha256())) {
          throw new ProtocolException(
              ErrorCode.MALFORMED_PAYLOAD,
              "received "
                  + size
                  + " bytes with SHA-256 "
                  + got
                  + ", announced "
                  + header.size()
                  + " bytes with "
                  + header.sha256());
        }
        done = true;
      } finally {
        if (!done) {
          Files.deleteIfExists(tmp);
        }
      }
      Files.setPosixFilePermissions(tmp, permissions(header.mode()));
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      out.write(
          new Frame(
              MessageType.PUT_FILE.wire(), Frame.FLAG_RESPONSE | Frame.FLAG_END, id, new byte[0]));
    }
  }

  /**
   * Sends a file as FILE_DATA chunks, then its header (size, mode, SHA-256) in the GET_FILE answer.
   */
  static void get(int id, String path, long limit, FrameWriter out) throws IOException {
    Path p = checkedPath(path);
    if (!Files.exists(p)) {
      throw new ProtocolException(ErrorCode.NOT_FOUND, p + " does not exist");
    }
    if (Files.isDirectory(p)) {
      throw new ProtocolException(ErrorCode.IS_A_DIRECTORY, p + " is a directory");
    }
    if (!Files.isRegularFile(p)) {
      throw new ProtocolException(
          ErrorCode.NOT_A_REGULAR_FILE, p + " is not a regular file (a device, FIFO or socket)");
    }
    if (!Files.isReadable(p)) {
      throw new ProtocolException(ErrorCode.PERMISSION_DENIED, p + ": permission denied");
    }
    long size = Files.size(p);
    if (size > limit) {
      throw new ProtocolException(
          ErrorCode.FRAME_TOO_LARGE, p + " is " + size + " bytes, more than the limit of " + limit);
    }
    // hashed before sending: the content must not change during the copy (the host checks it)
    String sha = nativeSha256(p);
    long sent = 0;
    try (InputStream in = Files.newInputStream(p)) {
      byte[] buf = new byte[CHUNK];
      while (true) {
        int n = in.readNBytes(buf, 0, buf.length);
        sent += n;
        boolean last = n < buf.length;
        out.write(
            new Frame(
                MessageType.FILE_DATA.wire(),
                Frame.FLAG_RESPONSE | (last ? Frame.FLAG_END : 0),
                id,
                Arrays.copyOf(buf, n)));
        if (last) {
          break;
        }
      }
    }
    int mode = 0;
    for (PosixFilePermission perm : Files.getPosixFilePermissions(p)) {
      mode |= bit(perm);
    }
    out.write(
        Frame.response(
            MessageType.GET_FILE, id, new FileHeader(p.toString(), mode, sent, sha).encode()));
  }

  static Set<PosixFilePermission> permissions(int mode) {
    Set<PosixFilePermission> s = java.util.EnumSet.noneOf(PosixFilePermission.class);
    for (PosixFilePermission perm : PosixFilePermission.values()) {
      if ((mode & bit(perm)) != 0) {
        s.add(perm);
      }
    }
    return s;
  }

  /** The permission's bit in a Unix mode (0400 for OWNER_READ ... 0001 for OTHERS_EXECUTE). */
  static int bit(PosixFilePermission perm) {
    return switch (perm) {
      case OWNER_READ -> 0400;
      case OWNER_WRITE -> 0200;
      case OWNER_EXECUTE -> 0100;
      case GROUP_READ -> 040;
      case GROUP_WRITE -> 020;
      case GROUP_EXECUTE -> 010;
      case OTHERS_READ -> 04;
      case OTHERS_WRITE -> 02;
      case OTHERS_EXECUTE -> 01;
    };
  }

  /**
   * A SHA-256 fed chunk by chunk in the agent's native library, as the chunks arrive: no reading
   * back of the file and no {@code sha256sum} process after the last byte.
   */
  static final class ChunkHash {
    private final ByteBuffer state = ByteBuffer.allocateDirect(NativeHelpers.shaStateSize());

    private ChunkHash() {
      NativeHelpers.shaInit(state);
    }

    /** A new hash; empty without the native library. */
    static Optional<ChunkHash> start() {
      if (NativeHelpers.isLoaded()) {
        try {
          return Optional.of(new ChunkHash());
        } catch (LinkageError e) { // a library that loaded but does not bind: never again
          NativeHelpers.unusable(e);
        }
      }
      return Optional.empty();
    }

    private boolean spent;

    void update(byte[] b) {
      if (spent) {
        throw new IllegalStateException("the hash was ended");
      }
      NativeHelpers.shaUpdate(state, b, 0, b.length);
    }

    /** The digest in lower-case hex; the hash is spent. */
    String hex() {
      if (spent) {
        throw new IllegalStateException("the hash was ended");
      }
      spent = true;
      byte[] d = new byte[32];
      NativeHelpers.shaFinal(state, d);
      return HexFormat.of().formatHex(d);
    }
  }

  /**
   * SHA-256 of a file: in the agent's native library, or by busybox's {@code sha256sum} without it
   * (the agent runs interpreted, {@code -Xint}, for start-up time, where Java's SHA-256 manages
   * about 0.3 MB/s under TCG).
   */
  static String nativeSha256(Path file) throws IOException {
    if (NativeHelpers.isLoaded()) {
      try {
        byte[] d = new byte[32];
        NativeHelpers.shaFile(file.toString().getBytes(StandardCharsets.UTF_8), d);
        return HexFormat.of().formatHex(d);
      } catch (LinkageError e) { // a library that loaded but does not bind: never again
        NativeHelpers.unusable(e);
      }
    }
    Process p = new ProcessBuilder("sha256sum", file.toString()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
    try {
      if (p.waitFor() != 0 || out.length() < 64) {
        throw new IOException("sha256sum " + file + " failed: " + out.trim());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted hashing " + file, e);
    }
    return out.substring(0, 64);
  }
}
