package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.ErrorCode;
import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import dev.agentvm.protocol.ProtocolException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** GET_FILE's hash is of the bytes sent, and a file that changes while it is read is not sent. */
class FileTransferTest {
  @Test
  void theHashIsOfTheBytesSent(@TempDir Path tmp) throws Exception {
    byte[] data = new byte[300_000];
    new Random(19).nextBytes(data);
    Path f = tmp.resolve("f.bin");
    Files.write(f, data);
    ByteArrayOutputStream wire = new ByteArrayOutputStream();
    FileTransfer.get(7, f.toString(), 1 << 30, new FrameWriter(wire));
    FrameReader in = new FrameReader(new ByteArrayInputStream(wire.toByteArray()));
    ByteArrayOutputStream got = new ByteArrayOutputStream();
    FileHeader header = null;
    for (Frame fr = in.read(); fr != null; fr = in.read()) {
      if (fr.type() == MessageType.FILE_DATA.wire()) {
        got.write(fr.payload());
      } else if (fr.type() == MessageType.GET_FILE.wire()) {
        header = FileHeader.decode(fr.payload());
        break;
      }
    }
    assertTrue(header != null, "a GET_FILE answer");
    String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    assertEquals(sha, header.sha256());
    assertEquals(data.length, header.size());
    assertEquals(data.length, got.size());
  }

  @Test
  void aFileThatChangesWhileItIsSentFailsInsteadOfArrivingTorn(@TempDir Path tmp) throws Exception {
    Path f = tmp.resolve("f.bin");
    Files.write(f, new byte[300_000]);
    OutputStream appendOnFirstFrame =
        new OutputStream() {
          private boolean changed;

          @Override
          public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
          }

          @Override
          public void write(byte[] b, int off, int len) {
            if (!changed) {
              changed = true;
              try {
                Files.write(f, new byte[] {1}, StandardOpenOption.APPEND);
              } catch (IOException e) {
                throw new UncheckedIOException(e);
              }
            }
          }
        };
    ProtocolException e =
        assertThrows(
            ProtocolException.class,
            () -> FileTransfer.get(8, f.toString(), 1 << 30, new FrameWriter(appendOnFirstFrame)));
    assertEquals(ErrorCode.INTERNAL, e.code());
    assertTrue(e.getMessage().contains("changed while it was sent"), e.getMessage());
  }
}
