package dev.agentvm.protocol;

import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;
import static org.quicktheories.generators.SourceDSL.longs;
import static org.quicktheories.generators.SourceDSL.strings;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;

/** Every message payload round-trips, and no byte sequence crashes a decoder. */
class PayloadPropertiesTest {
  /** Any valid Unicode text (UTF-16 without unpaired surrogates). */
  private static Gen<String> text() {
    return strings().allPossible().ofLengthBetween(0, 40).map(PayloadPropertiesTest::validUnicode);
  }

  private static String validUnicode(String s) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)
          && i + 1 < s.length()
          && Character.isLowSurrogate(s.charAt(i + 1))) {
        b.append(c).append(s.charAt(++i));
      } else if (!Character.isSurrogate(c)) {
        b.append(c);
      }
    }
    return b.toString();
  }

  @Test
  void invalidUnicodeIsRefusedNotSilentlyChanged() {
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class, () -> new PayloadWriter().string("a\uD800b"));
    byte[] badUtf8 = new PayloadWriter().i32(2).toByteArray();
    byte[] p = java.util.Arrays.copyOf(badUtf8, 6);
    p[4] = (byte) 0xC3; // a lead byte followed by no continuation byte
    p[5] = (byte) 0x28;
    ProtocolException e =
        org.junit.jupiter.api.Assertions.assertThrows(
            ProtocolException.class, () -> new PayloadReader(p).string());
    org.junit.jupiter.api.Assertions.assertEquals(ErrorCode.MALFORMED_PAYLOAD, e.code());
  }

  private static Gen<byte[]> bytes(int max) {
    return lists()
        .of(integers().between(0, 255))
        .ofSizeBetween(0, max)
        .map(
            l -> {
              byte[] b = new byte[l.size()];
              for (int i = 0; i < b.length; i++) b[i] = (byte) (int) l.get(i);
              return b;
            });
  }

  @Test
  void execSpecRoundTrips() {
    qt().forAll(lists().of(text()).ofSizeBetween(1, 6), text(), bytes(64))
        .checkAssert(
            (argv, script, stdin) -> {
              List<String> envKeys = argv.subList(0, argv.size() / 2);
              long n = Math.abs((long) script.hashCode() * 31 + stdin.length);
              Map<String, String> env = new LinkedHashMap<>();
              envKeys.forEach(k -> env.put(k, k + "=v"));
              ExecSpec s = new ExecSpec(argv, script, env, script, stdin, n % 100_000, n, n % 7);
              try {
                ExecSpec back = ExecSpec.decode(s.encode());
                if (!s.equals(back)) throw new AssertionError(s + " came back as " + back);
              } catch (ProtocolException e) {
                throw new AssertionError(e);
              }
            });
  }

  @Test
  void smallPayloadsRoundTrip() {
    qt().forAll(integers().all(), integers().all(), longs().all())
        .checkAssert(
            (code, sig, ms) -> {
              boolean a = sig % 3 == 0;
              boolean b = (code & 1) == 0;
              try {
                ExitStatus e = new ExitStatus(code, sig, ms, a, b, !a, !b);
                check(e, ExitStatus.decode(e.encode()));
                FileHeader f =
                    new FileHeader(
                        "/p/" + code,
                        Math.floorMod(code, 07777),
                        Math.abs(ms % Long.MAX_VALUE),
                        "ab" + sig);
                check(f, FileHeader.decode(f.encode()));
                StatusReport r = new StatusReport(ms, code, sig, code / 7.0, sig, code);
                check(r, StatusReport.decode(r.encode()));
                MountSpec m = new MountSpec("tag" + code, "/mnt/" + sig, a);
                check(m, MountSpec.decode(m.encode()));
              } catch (ProtocolException e) {
                throw new AssertionError(e);
              }
            });
  }

  private static void check(Object sent, Object back) {
    if (!sent.equals(back)) throw new AssertionError(sent + " came back as " + back);
  }

  @Test
  void arbitraryBytesGiveAProtocolExceptionNeverAnotherException() {
    List<Decoder> decoders =
        List.of(
            ExecSpec::decode,
            ExitStatus::decode,
            FileHeader::decode,
            StatusReport::decode,
            MountSpec::decode,
            HelloRequest::decode,
            HelloResponse::decode,
            ErrorPayload::decode);
    qt().forAll(bytes(200))
        .checkAssert(
            b -> {
              for (Decoder d : decoders) {
                try {
                  d.decode(b);
                } catch (ProtocolException expected) {
                  // a clear protocol error is the right answer to garbage
                }
              }
            });
  }

  @FunctionalInterface
  interface Decoder {
    Object decode(byte[] b) throws ProtocolException;
  }
}
