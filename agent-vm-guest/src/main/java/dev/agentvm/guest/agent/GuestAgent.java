package dev.agentvm.guest.agent;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.ErrorPayload;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.HelloRequest;
import dev.agentvm.protocol.HelloResponse;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.Protocol;
import dev.agentvm.protocol.ProtocolException;
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

  private final Path port;
  private final long initUptimeMillis;
  private final long agentStartUptimeMillis;

  GuestAgent(Path port, long initUptimeMillis, long agentStartUptimeMillis) {
    this.port = port;
    this.initUptimeMillis = initUptimeMillis;
    this.agentStartUptimeMillis = agentStartUptimeMillis;
  }

  public static void main(String[] args) throws Exception {
    long startUptime = uptimeMillis();
    String name =
        System.getenv().getOrDefault("AGENTVM_PORT_NAME", Protocol.VIRTIO_SERIAL_PORT_NAME);
    long initUptime = parseSecondsToMillis(System.getenv("AGENTVM_INIT_UPTIME"));
    Path port = findPort(name, 30_000);
    log("agent " + VERSION + " serving " + port + " (port name " + name + ")");
    new GuestAgent(port, initUptime, startUptime).serve();
  }

  /** Serves the port forever. */
  void serve() throws InterruptedException {
    while (true) {
      // a virtio-serial port can be opened only once: one descriptor serves both directions
      try (RandomAccessFile dev = new RandomAccessFile(port.toFile(), "rw")) {
        InputStream in = new FileInputStream(dev.getFD());
        OutputStream out = new FileOutputStream(dev.getFD());
        serveConnection(in, new FrameWriter(out));
      } catch (IOException e) {
        log("port error, reopening: " + e);
        Thread.sleep(200);
      }
    }
  }

  void serveConnection(InputStream in, FrameWriter out) throws IOException, InterruptedException {
    FrameReader reader = new FrameReader(in);
    while (true) {
      Frame frame;
      try {
        frame = reader.read();
      } catch (ProtocolException e) {
        log("bad frame: " + e.getMessage());
        sendQuietly(
            out,
            Frame.response(
                MessageType.ERROR, 0, new ErrorPayload(e.code(), e.getMessage()).encode()));
        reader.resync();
        continue;
      } catch (EOFException e) {
        // host went away mid-frame: drop the partial frame
        reader = new FrameReader(in);
        Thread.sleep(IDLE_POLL_MILLIS);
        continue;
      }
      if (frame == null) {
        // no host connected (virtio-serial reads 0 bytes then): wait for one
        Thread.sleep(IDLE_POLL_MILLIS);
        continue;
      }
      handle(frame, out);
    }
  }

  private void handle(Frame frame, FrameWriter out) {
    int id = frame.requestId();
    MessageType type = frame.messageType().orElse(null);
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
          HelloResponse rs =
              new HelloResponse(
                  Protocol.VERSION,
                  VERSION,
                  List.of("ping", "shutdown"),
                  kernelRelease(),
                  initUptimeMillis,
                  agentStartUptimeMillis,
                  uptimeMillis());
          out.write(Frame.response(MessageType.HELLO, id, rs.encode()));
          log("hello from " + rq.hostSoftware());
        }
        case PING -> out.write(Frame.response(MessageType.PONG, id, frame.payload()));
        case SHUTDOWN -> {
          out.write(Frame.response(MessageType.SHUTDOWN, id, new byte[0]));
          log("shutdown requested by host");
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
      error(out, id, e.code(), e.getMessage());
    } catch (IOException e) {
      log("cannot answer request " + id + ": " + e);
    }
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
      // -f: no init scripts to run in the micro image; the kernel powers the machine off directly
      new ProcessBuilder("poweroff", "-f").inheritIO().start().waitFor();
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
            if (Files.isReadable(nameFile) && Files.readString(nameFile).trim().equals(name)) {
              return Path.of("/dev").resolve(p.getFileName().toString());
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
