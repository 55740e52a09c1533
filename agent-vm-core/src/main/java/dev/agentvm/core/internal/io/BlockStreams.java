package dev.agentvm.core.internal.io;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** Streams over transports that move blocks of bytes: subclasses give only the block methods. */
public final class BlockStreams {
  private BlockStreams() {}

  /** An input stream whose single-byte read goes through the block read. */
  public abstract static class In extends InputStream {
    @Override
    public final int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xFF;
    }

    @Override
    public abstract int read(byte[] b, int off, int len) throws IOException;
  }

  /** An output stream whose single-byte write goes through the block write. */
  public abstract static class Out extends OutputStream {
    @Override
    public final void write(int b) throws IOException {
      write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public abstract void write(byte[] b, int off, int len) throws IOException;
  }
}
