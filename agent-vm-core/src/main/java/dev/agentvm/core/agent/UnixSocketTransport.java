package dev.agentvm.core.agent;

import dev.agentvm.core.internal.io.BlockStreams;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

/**
 * The host end of a virtio-serial port: the UNIX socket QEMU listens on. Uses the JDK's own
 * UNIX-domain {@link SocketChannel}; no native library.
 */
public final class UnixSocketTransport implements AgentTransport {
  private final Path socket;

  public UnixSocketTransport(Path socket) {
    this.socket = socket;
  }

  public Path socket() {
    return socket;
  }

  @Override
  public Connection connect() throws IOException {
    SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
    try {
      ch.connect(UnixDomainSocketAddress.of(socket));
    } catch (IOException e) {
      ch.close();
      throw e;
    }
    return new ChannelConnection(ch);
  }

  @Override
  public String describe() {
    return "virtio-serial " + socket;
  }

  /**
   * Streams straight over the channel. (JDK 17's {@code Channels.newInputStream} holds the
   * channel's blocking lock while it waits for input, which would stall a concurrent writer.)
   */
  static final class ChannelConnection implements Connection {
    private final SocketChannel ch;
    private final InputStream in;
    private final OutputStream out;

    ChannelConnection(SocketChannel ch) {
      this.ch = ch;
      this.in =
          new BlockStreams.In() {
            @Override
            public int read(byte[] b, int off, int len) throws IOException {
              if (len == 0) {
                return 0;
              }
              return ch.read(ByteBuffer.wrap(b, off, len));
            }
          };
      this.out =
          new BlockStreams.Out() {
            @Override
            public void write(byte[] b, int off, int len) throws IOException {
              ByteBuffer buf = ByteBuffer.wrap(b, off, len);
              while (buf.hasRemaining()) {
                ch.write(buf);
              }
            }
          };
    }

    @Override
    public InputStream input() {
      return in;
    }

    @Override
    public OutputStream output() {
      return out;
    }

    @Override
    public void close() throws IOException {
      ch.close();
    }
  }
}
