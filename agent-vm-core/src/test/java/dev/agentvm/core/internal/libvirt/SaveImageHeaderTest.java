package dev.agentvm.core.internal.libvirt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.strings;

import dev.agentvm.core.SnapshotException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The save-image header rewrite, on files laid out as libvirt 9.0 writes them. */
class SaveImageHeaderTest {
  @TempDir Path tmp;

  /** A save image: header, XML, cookie, padding, then a fake migration stream. */
  static byte[] image(String xml, String cookie, int padding, byte[] stream) {
    byte[] x = xml.getBytes(StandardCharsets.UTF_8);
    byte[] c = cookie.getBytes(StandardCharsets.UTF_8);
    int dataLen = x.length + 1 + (c.length > 0 ? c.length + 1 : 0) + padding;
    ByteBuffer b =
        ByteBuffer.allocate(SaveImageHeader.HEADER + dataLen + stream.length)
            .order(ByteOrder.nativeOrder());
    b.put("LibvirtQemudSave".getBytes(StandardCharsets.US_ASCII));
    b.putInt(2).putInt(dataLen).putInt(1).putInt(0).putInt(c.length > 0 ? x.length + 1 : 0);
    b.position(SaveImageHeader.HEADER);
    b.put(x).put((byte) 0);
    if (c.length > 0) {
      b.put(c).put((byte) 0);
    }
    b.position(SaveImageHeader.HEADER + dataLen);
    b.put(stream);
    return b.array();
  }

  static String xmlOf(byte[] file) {
    int end = SaveImageHeader.HEADER;
    while (file[end] != 0) {
      end++;
    }
    return new String(
        file, SaveImageHeader.HEADER, end - SaveImageHeader.HEADER, StandardCharsets.UTF_8);
  }

  @Test
  void rewritesTheXmlAndKeepsCookieAndStream() {
    qt().withExamples(200)
        .forAll(
            strings().betweenCodePoints(1, 0xD7FF).ofLengthBetween(1, 300),
            strings().betweenCodePoints(1, 0xD7FF).ofLengthBetween(1, 300),
            integers().between(0, 400))
        .checkAssert(
            (oldXml, newXml, pad) -> {
              try {
                byte[] stream = new byte[4096];
                new Random(pad).nextBytes(stream);
                byte[] f = image(oldXml, "<cookie/>", 64 + pad, stream);
                Path p = Files.write(tmp.resolve("img" + pad), f);
                int room = f.length - stream.length - SaveImageHeader.HEADER - 10 - 1;
                if (newXml.getBytes(StandardCharsets.UTF_8).length > room) {
                  assertThrows(
                      SnapshotException.class, () -> SaveImageHeader.rewriteXml(p, newXml));
                  assertArrayEquals(f, Files.readAllBytes(p), "a refused rewrite changes nothing");
                  return;
                }
                SaveImageHeader.rewriteXml(p, newXml);
                byte[] g = Files.readAllBytes(p);
                assertEquals(f.length, g.length);
                assertEquals(newXml, xmlOf(g));
                ByteBuffer h = ByteBuffer.wrap(g).order(ByteOrder.nativeOrder());
                int cookieAt = h.getInt(32);
                assertEquals(newXml.getBytes(StandardCharsets.UTF_8).length + 1, cookieAt);
                assertEquals(
                    "<cookie/>",
                    new String(g, SaveImageHeader.HEADER + cookieAt, 9, StandardCharsets.UTF_8));
                assertArrayEquals(
                    Arrays.copyOfRange(f, 0, 32), Arrays.copyOfRange(g, 0, 32), "fixed fields");
                assertArrayEquals(
                    stream, Arrays.copyOfRange(g, g.length - stream.length, g.length));
              } catch (java.io.IOException e) {
                throw new AssertionError(e);
              } catch (AssertionError e) {
                throw new AssertionError(
                    e.getMessage() + " (old " + oldXml.length() + ", new " + newXml.length() + ")",
                    e);
              }
            });
  }

  @Test
  void refusesWhatIsNotASaveImage() throws Exception {
    Path p = Files.write(tmp.resolve("junk"), new byte[200]);
    SnapshotException e =
        assertThrows(SnapshotException.class, () -> SaveImageHeader.rewriteXml(p, "<domain/>"));
    assertEquals(p + " is not a complete libvirt save image", e.getMessage());
    Path shortFile = Files.write(tmp.resolve("short"), new byte[10]);
    assertThrows(SnapshotException.class, () -> SaveImageHeader.rewriteXml(shortFile, "<d/>"));
  }
}
