package dev.agentvm.guest.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.protocol.FileHeader;
import dev.agentvm.protocol.Frame;
import dev.agentvm.protocol.FrameReader;
import dev.agentvm.protocol.FrameWriter;
import dev.agentvm.protocol.MessageType;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** GET_FILE sends a file and the SHA-256 of what it sent. */
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
}
