package dev.agentvm.guest.agent;

import dev.agentvm.protocol.EgressSpec;
import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.ExecSpec;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.FsRequest;
import dev.agentvm.protocol.HelloRequest;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.MountSpec;
import dev.agentvm.protocol.PayloadReader;
import dev.agentvm.protocol.ProcList;
import dev.agentvm.protocol.ProcRequest;
import dev.agentvm.protocol.Protocol;
import dev.agentvm.protocol.ProtocolException;
import dev.agentvm.protocol.StreamFrame;
import java.io.EOFException;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The agent inside every VM. Opens its virtio-serial port and answers the host's requests.
 *
 * <p>It must never die from bad input: a malformed frame is answered with ERROR and the reader
 * resynchronises on the next frame boundary. A port with no host connected reads as end-of-stream;
 * the agent then waits and reads again, so a host that disconnects and reconnects is served anew.
 * Uses java.base only and logs plain lines to standard error (the guest console).
 */
public final class GuestAgent {
  public static final String VERSION = "0.1.0";
  private static final long IDLE_POLL_MILLIS = 20;

  static final List<String> CAPABILITIES =
      List.of(
          "ping",
          "shutdown",
          "exec",
          "kill",
          "status",
          "put-file",
          "get-file",
          "mount",
          "fs-op",
          "spawn",
          "egress");

  private final Path port;
  private final Map<Integer, ExecTask> execs = new ConcurrentHashMap<>();
  private final Map<Integer, FileTransfer.Put> puts = new ConcurrentHashMap<>();
  private final Map<Integer, WatchTask> watches = new ConcurrentHashMap<>();
  private final Map<Integer, Spawned> spawned =
      new java.util.LinkedHashMap<>(); // guarded by itself
  private int nextHandle = 1; // guarded by spawned
  private java.util.Optional<EgressTask> egress = java.util.Optional.empty(); // guarded by this

  /**
   * Ids of transfers that ended recently. A transfer that fails (disk full) ends while the host is
   * still sending its chunks; those chunks are dropped quietly, so that the host sees the
   * transfer's own error and not a later "no open transfer" one.
   */
  private final Set<Integer> endedPuts = recentIds(256);

  private final ExecutorService workers =
      Executors.newCachedThreadPool(
          r -> {
            Thread t = new Thread(r, "agentvm-worker");
            t.setDaemon(true);
            return t;
          });
  private final long maxFileSize =
      Long.parseLong(
          System.getenv().getOrDefault("AGENTVM_MAX_FILE_BYTES", Long.toString(1L << 30)));
  private final long initUptimeMillis;
  private final long agentStartUptimeMillis;
  private final boolean keepsClock;

  /** A thread-safe set that keeps the {@code max} ids added last (made here: no outer instance). */
  private static Set<Integer> recentIds(int max) {
    return java.util.Collections.synchronizedSet(
        java.util.Collections.newSetFromMap(
            new java.util.LinkedHashMap<>() {
              @Override
              protected boolean removeEldestEntry(Map.Entry<Integer, Boolean> eldest) {
                return size() > max;
              }
            }));
  }

  /** An agent that leaves the clock alone: tests run it on the build machine, maybe as root. */
  GuestAgent(Path port, long initUptimeMillis, long agentStartUptimeMillis) {
    this(port, initUptimeMillis, agentStartUptimeMillis, false);
  }

  /**
   * @param keepsClock whether each HELLO brings the clock to the RTC ({@link GuestClock}): only the
   *     agent of a VM does, never one running elsewhere
   */
  GuestAgent(Path port, long initUptimeMillis, long agentStartUptimeMillis, boolean keepsClock) {
    this.port = port;
    this.initUptimeMillis = initUptimeMillis;
    this.agentStartUptimeMillis = agentStartUptimeMillis;
    this.keepsClock = keepsClock;
  }

  public static void main(String[] args) throws IOException, InterruptedException {
    long startUptime = uptimeMillis();
    String name =
        System.getenv().getOrDefault("AGENTVM_PORT_NAME", Protocol.VIRTIO_SERIAL_PORT_NAME);
    long initUptime = parseSecondsToMillis(System.getenv("AGENTVM_INIT_UPTIME"));
    Path port = findPort(name, 30_000);
    log("agent " + VERSION + " serving " + port + " (port name " + name + ")");
    NativeHelpers.load();
    String jnu = System.getProperty("sun.jnu.encoding");
    if (!"UTF-8".equals(jnu)) {
      // argv, environment and file names would reach commands with non-ASCII text as '?'
      log("WARNING: sun.jnu.encoding is " + jnu + ", not UTF-8: no C.UTF-8 locale (LANG/LC_ALL)?");
    }
    new GuestAgent(port, initUptime, startUptime, true).serve();
  }

  /** Serves the port forever. */
  void serve() throws InterruptedException {
    while (true) {
      // a virtio-serial port can be opened only once: one descriptor serves both directions
      try (RandomAccessFile dev = new RandomAccessFile(port.toFile(), "rw")) {
        InputStream in = new StallGuard(new FileInputStream(dev.getFD()), IDLE_POLL_MILLIS);
        OutputStream out = new FileOutputStream(dev.getFD());
        serveConnection(in, new FrameWriter(out));
      } catch (IOException e) {
        log("port error, reopening: " + e);
        stopAll("port error"); // as when the host goes away: nobody hears these commands now
        Thread.sleep(200);
      }
    }
  }

  void serveConnection(InputStream in, FrameWriter out) throws IOException, InterruptedException {
    FrameReader reader = new FrameReader(in);
    boolean hostSeen = false;
    while (true) {
      Frame frame;
      StallGuard guard = in instanceof StallGuard g ? g : null;
      try {
        if (guard != null) {
          guard.inFrame(reader.hasBufferedBytes());
        }
        frame = reader.read();
      } catch (ProtocolException e) {
        log("bad frame: " + e.getMessage());
        sendQuietly(
            out,
            Frame.response(MessageType.ERROR, 0, new ErrorPayload(e.code(), e.detail()).encode()));
        try {
          if (guard != null) {
            guard.inFrame(false); // looking for the next frame may take as long as it takes
          }
          reader.resync();
        } catch (StallGuard.Stalled s) {
          reader = new FrameReader(in);
        }
        continue;
      } catch (StallGuard.Stalled e) {
        // a frame began and its rest never came (a host that went away unnoticed): drop it
        log("dropped a partial frame: " + e.getMessage());
        reader = new FrameReader(in);
        continue;
      } catch (EOFException e) {
        frame = null; // host went away mid-frame: drop the partial frame
        reader = new FrameReader(in);
      }
      if (frame == null) {
        // virtio-serial reads 0 bytes while no host is connected: wait for one
        if (hostSeen) {
          hostSeen = false;
          stopAll("host disconnected");
        }
        Thread.sleep(IDLE_POLL_MILLIS);
        continue;
      }
      hostSeen = true;
      handle(frame, out);
    }
  }

  /** Stops every command and transfer of the connection that ended. */
  void stopAll(String why) {
    if (!execs.isEmpty() || !puts.isEmpty()) {
      log(why + ": stopping " + execs.size() + " commands and " + puts.size() + " transfers");
    }
    execs.values().forEach(ExecTask::kill);
    puts.values().forEach(FileTransfer.Put::abort);
    watches.values().forEach(WatchTask::stop);
    stopEgress(why);
    synchronized (spawned) {
      spawned.values().forEach(Spawned::detach); // background processes outlive the host
    }
  }

  private void handle(Frame frame, FrameWriter out) {
    int id = frame.requestId();
    MessageType type = frame.messageType().orElse(null);
    if (frame.isResponse()) {
      // the agent starts no exchange, so nothing answers it; and an answer is never answered (two
      // peers that answered each other's ERRORs would loop)
      log("ignored an unsolicited answer from the host: " + frame);
      return;
    }
    try {
      if (type == null) {
        error(
            out,
            id,
            ErrorCode.UNKNOWN_TYPE,
            "unknown message type 0x" + Integer.toHexString(frame.type()));
        return;
      }
      switch (type) {
        case HELLO -> {
          HelloRequest rq = HelloRequest.decode(frame.payload());
          if (rq.minVersion() > Protocol.VERSION || rq.maxVersion() < Protocol.VERSION) {
            error(
                out,
                id,
                ErrorCode.UNSUPPORTED_VERSION,
                "host speaks "
                    + rq.minVersion()
                    + ".."
                    + rq.maxVersion()
                    + ", agent speaks "
                    + Protocol.VERSION);
            return;
          }
          if (keepsClock) {
            GuestClock.sync();
          }
          HelloResponse rs =
              new HelloResponse(
                  Protocol.VERSION,
                  VERSION,
                  CAPABILITIES,
                  kernelRelease(),
                  initUptimeMillis,
                  agentStartUptimeMillis,
                  uptimeMillis());
          out.write(Frame.response(MessageType.HELLO, id, rs.encode()));
          log("hello from " + rq.hostSoftware());
        }
        case PING -> out.write(Frame.response(MessageType.PONG, id, frame.payload()));
        case STATUS -> {
          PayloadReader.requireEmpty(frame.payload());
          out.write(Frame.response(MessageType.STATUS, id, Status.read(execs.size()).encode()));
        }
        case EXEC -> {
          ExecTask task = new ExecTask(id, ExecSpec.decode(frame.payload()), out, workers);
          if (execs.putIfAbsent(id, task) != null) {
            error(out, id, ErrorCode.MALFORMED_PAYLOAD, "request id " + id + " is already running");
            return;
          }
          work(
              out,
              id,
              () -> {
                try {
                  task.run();
                } finally {
                  execs.remove(id);
                }
              });
        }
        case WATCH -> {
          PayloadReader r = new PayloadReader(frame.payload());
          String path = r.string();
          r.end();
          work(
              out,
              id,
              () -> {
                WatchTask w = new WatchTask(id, path, out);
                if (watches.putIfAbsent(id, w) != null) {
                  w.stop();
                  throw new ProtocolException(
                      ErrorCode.MALFORMED_PAYLOAD, "request id " + id + " is already running");
                }
                try {
                  w.run();
                } finally {
                  watches.remove(id);
                }
              });
        }
        case SPAWN -> {
          ExecSpec spec = ExecSpec.decode(frame.payload());
          work(out, id, () -> spawn(id, spec, out));
        }
        case PROC -> {
          ProcRequest q = ProcRequest.decode(frame.payload());
          work(out, id, () -> proc(id, q, out));
        }
        case EGRESS -> {
          EgressSpec spec = EgressSpec.decode(frame.payload());
          work(out, id, () -> egress(id, spec, out));
        }
        case STREAM -> {
          StreamFrame f;
          try {
            f = StreamFrame.decode(frame.payload());
          } catch (ProtocolException e) {
            // the ERROR ends the egress for the host; so it does here
            error(out, id, e.code(), e.detail());
            if (currentEgress().filter(t -> t.id == id).isPresent()) {
              stopEgress("a malformed STREAM from the host");
            }
            return;
          }
          // frames of an egress that ended are dropped
          currentEgress().filter(e -> e.id == id).ifPresent(e -> e.onFrame(f));
        }
        case KILL -> {
          PayloadReader r = new PayloadReader(frame.payload());
          int target = r.i32();
          r.end();
          ExecTask task = execs.get(target);
          WatchTask watch = watches.get(target);
          if (currentEgress().filter(e -> e.id == target).isPresent()) {
            out.write(Frame.response(MessageType.KILL, id, new byte[0]));
            stopEgress("stopped by the host"); // its last EGRESS follows the KILL answer
          } else if (watch != null) {
            watch.stop();
            out.write(Frame.response(MessageType.KILL, id, new byte[0]));
          } else if (task == null) {
            // a command that already ended is the usual case: a race, not a malformed request
            error(out, id, ErrorCode.NOT_FOUND, "no running command with request id " + target);
          } else {
            task.kill();
            out.write(Frame.response(MessageType.KILL, id, new byte[0]));
          }
        }
        case PUT_FILE -> {
          FileTransfer.Put put =
              new FileTransfer.Put(id, FileHeader.decode(frame.payload()), maxFileSize, out);
          if (puts.putIfAbsent(id, put) != null) {
            // replacing it would hand the first transfer's chunks to the second
            error(out, id, ErrorCode.MALFORMED_PAYLOAD, "request id " + id + " is already in use");
            return;
          }
          work(
              out,
              id,
              () -> {
                try {
                  put.run();
                } finally {
                  endedPuts.add(id);
                  puts.remove(id, put);
                }
              });
        }
        case FILE_DATA -> {
          FileTransfer.Put put = puts.get(id);
          if (put == null) {
            if (endedPuts.contains(id)) {
              return; // the tail of a transfer that already ended (and answered)
            }
            error(out, id, ErrorCode.MALFORMED_PAYLOAD, "FILE_DATA for no open transfer " + id);
          } else {
            put.offer(frame); // blocks while the transfer's queue is full: backpressure to the host
          }
        }
        case GET_FILE -> {
          PayloadReader r = new PayloadReader(frame.payload());
          String path = r.string();
          long limit = Math.min(r.i64(), maxFileSize);
          r.end();
          work(out, id, () -> FileTransfer.get(id, path, limit, out));
        }
        case FS_OP -> {
          FsRequest q = FsRequest.decode(frame.payload());
          work(out, id, () -> out.write(Frame.response(MessageType.FS_OP, id, FileOps.run(q))));
        }
        case MOUNT -> {
          MountSpec m = MountSpec.decode(frame.payload());
          work(out, id, () -> mount(id, m, out));
        }
        case SHUTDOWN -> {
          PayloadReader.requireEmpty(frame.payload());
          out.write(Frame.response(MessageType.SHUTDOWN, id, new byte[0]));
          log("shutdown requested by host");
          stopAll("shutdown");
          powerOff();
        }
        default ->
            error(
                out,
                id,
                ErrorCode.UNSUPPORTED_OPERATION,
                "agent does not accept " + type + " requests");
      }
    } catch (ProtocolException e) {
      error(out, id, e.code(), e.detail());
    } catch (IOException e) {
      log("cannot answer request " + id + ": " + e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @FunctionalInterface
  interface Work {
    void run() throws IOException, InterruptedException;
  }

  /** Runs a request's work on a worker thread; any failure becomes its ERROR answer. */
  private void work(FrameWriter out, int id, Work w) {
    workers.execute(
        () -> {
          try {
            w.run();
          } catch (ProtocolException e) {
            error(out, id, e.code(), e.detail());
          } catch (IOException e) {
            if (UserErrors.translate(e, "the request") instanceof ProtocolException user) {
              error(out, id, user.code(), user.detail());
            } else {
              error(out, id, ErrorCode.INTERNAL, e.toString());
            }
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // a pool thread: the pool clears it before reuse
            error(out, id, ErrorCode.INTERNAL, e.toString());
          } catch (RuntimeException e) {
            error(out, id, ErrorCode.INTERNAL, e.toString());
          }
        });
  }

  private synchronized java.util.Optional<EgressTask> currentEgress() {
    return egress;
  }

  private void stopEgress(String why) {
    java.util.Optional<EgressTask> e;
    synchronized (this) {
      e = egress;
      egress = java.util.Optional.empty();
    }
    e.ifPresent(t -> t.stop(why));
  }

  /** Opens the egress listener, replacing the one before (its last EGRESS goes out first). */
  private void egress(int id, EgressSpec spec, FrameWriter out) throws IOException {
    stopEgress("replaced");
    EgressTask e = new EgressTask(id, spec, out, workers);
    synchronized (this) {
      egress = java.util.Optional.of(e);
    }
    log("egress: listening on 127.0.0.1:" + spec.port());
    e.run();
  }

  private void spawn(int id, ExecSpec spec, FrameWriter out) throws IOException {
    Spawned p;
    synchronized (spawned) {
      spawned.values().removeIf(Spawned::collected);
      if (spawned.size() >= ProcList.MAX) {
        // forget the oldest finished process whose exit no host collected yet
        spawned.values().stream()
            .filter(s -> !s.running())
            .findFirst()
            .ifPresent(s -> spawned.remove(s.handle));
      }
      if (spawned.size() >= ProcList.MAX) {
        throw new ProtocolException(
            ErrorCode.UNSUPPORTED_OPERATION,
            ProcList.MAX + " background processes run already; kill some first");
      }
      p = Spawned.start(nextHandle++, spec, workers);
      spawned.put(p.handle, p);
    }
    p.attach(
        out,
        id,
        Frame.response(
            MessageType.SPAWN,
            id,
            new dev.agentvm.protocol.PayloadWriter().i32(p.handle).toByteArray()));
  }

  private void proc(int id, ProcRequest q, FrameWriter out)
      throws IOException, InterruptedException {
    if (q.op() == ProcRequest.Op.LIST) {
      List<ProcList.Entry> l = new java.util.ArrayList<>();
      synchronized (spawned) {
        spawned.values().removeIf(Spawned::collected);
        for (Spawned p : spawned.values()) {
          l.add(new ProcList.Entry(p.handle, p.running(), p.exitCode(), p.command));
        }
      }
      out.write(Frame.response(MessageType.PROC, id, new ProcList(l).encode()));
      return;
    }
    Spawned p;
    synchronized (spawned) {
      p = spawned.get(q.handle());
    }
    if (p == null) {
      throw new ProtocolException(
          ErrorCode.NOT_FOUND, "no background process with handle " + q.handle());
    }
    Frame ack = Frame.response(MessageType.PROC, id, new byte[0]);
    switch (q.op()) {
      case ATTACH -> p.attach(out, id, ack);
      case STDIN -> {
        try {
          p.write(q.data());
        } catch (IOException e) {
          throw new ProtocolException(
              ErrorCode.UNSUPPORTED_OPERATION, "the process's stdin is closed: " + e.getMessage());
        }
        out.write(ack);
      }
      case CLOSE_STDIN -> {
        p.closeStdin();
        out.write(ack);
      }
      case KILL -> {
        out.write(ack);
        p.kill();
      }
      case LIST -> throw new IllegalStateException("handled above");
    }
  }

  private static void mount(int id, MountSpec m, FrameWriter out)
      throws IOException, InterruptedException {
    java.nio.file.Path mp = FileTransfer.checkedPath(m.mountPoint());
    try {
      Files.createDirectories(mp);
    } catch (IOException e) {
      throw UserErrors.translate(e, "creating mount point " + mp);
    }
    String opts = "trans=virtio,version=9p2000.L,msize=262144" + (m.readOnly() ? ",ro" : "");
    Process p =
        new ProcessBuilder("mount", "-t", "9p", "-o", opts, m.tag(), mp.toString())
            .redirectErrorStream(true)
            .start();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
    if (p.waitFor() != 0) {
      throw new ProtocolException(
          ErrorCode.MOUNT_FAILED,
          "mount of 9p tag " + m.tag() + " on " + mp + " failed: " + output);
    }
    out.write(Frame.response(MessageType.MOUNT, id, new byte[0]));
  }

  private static void error(FrameWriter out, int id, ErrorCode code, String message) {
    sendQuietly(
        out, Frame.response(MessageType.ERROR, id, new ErrorPayload(code, message).encode()));
  }

  private static void sendQuietly(FrameWriter out, Frame f) {
    try {
      out.write(f);
    } catch (IOException e) {
      log("cannot send " + f + ": " + e);
    }
  }

  private static void powerOff() {
    try {
      new ProcessBuilder("sync").inheritIO().start().waitFor();
      if (java.nio.file.Files.isDirectory(Path.of("/run/systemd/system"))) {
        // a full distribution (a user's disk image): let systemd stop its services first
        new ProcessBuilder("systemctl", "poweroff").inheritIO().start().waitFor();
      } else {
        // the micro image has no init scripts: the kernel powers the machine off directly
        new ProcessBuilder("poweroff", "-f").inheritIO().start().waitFor();
      }
    } catch (IOException e) {
      log("poweroff failed: " + e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Finds the device of the virtio-serial port with this name, waiting for it to appear. */
  static Path findPort(String name, long timeoutMillis) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + timeoutMillis * 1_000_000;
    Path sys = Path.of("/sys/class/virtio-ports");
    while (true) {
      if (Files.isDirectory(sys)) {
        try (DirectoryStream<Path> ports = Files.newDirectoryStream(sys)) {
          for (Path p : ports) {
            Path nameFile = p.resolve("name");
            Path entry = p.getFileName(); // never null for a directory entry
            if (entry != null
                && Files.isReadable(nameFile)
                && Files.readString(nameFile).trim().equals(name)) {
              return Path.of("/dev").resolve(entry.toString());
            }
          }
        }
      }
      if (System.nanoTime() > deadline) {
        throw new IOException("no virtio-serial port named " + name + " under " + sys);
      }
      Thread.sleep(50);
    }
  }

  static long uptimeMillis() {
    try {
      String s = Files.readString(Path.of("/proc/uptime"), StandardCharsets.US_ASCII);
      return parseSecondsToMillis(s.substring(0, s.indexOf(' ')));
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  static long parseSecondsToMillis(String s) {
    if (s == null || s.isBlank()) {
      return -1;
    }
    try {
      return Math.round(Double.parseDouble(s.trim()) * 1000);
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  private static String kernelRelease() {
    try {
      return Files.readString(Path.of("/proc/sys/kernel/osrelease")).trim();
    } catch (IOException e) {
      return "unknown";
    }
  }

  static void log(String msg) {
    System.err.println("agentvm-agent: " + msg);
  }
}
