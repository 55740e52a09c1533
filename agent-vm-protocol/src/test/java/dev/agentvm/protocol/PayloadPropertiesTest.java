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

  @Test
  void fileSystemPayloadsRoundTrip() {
    qt().forAll(text(), text(), integers().between(0, 7), longs().between(0, Long.MAX_VALUE))
        .checkAssert(
            (path, name, k, size) -> {
              try {
                FsRequest.Op op =
                    List.of(FsRequest.Op.values()).get(k % FsRequest.Op.values().length);
                FsRequest q =
                    new FsRequest(
                        op,
                        "/" + path,
                        op == FsRequest.Op.RENAME ? "/" + name : "",
                        (op == FsRequest.Op.MKDIR || op == FsRequest.Op.REMOVE) && k > 3
                            ? FsRequest.RECURSIVE
                            : 0,
                        op == FsRequest.Op.LIST ? 1 + k : 0);
                check(q, FsRequest.decode(q.encode()));
                List<FsEntry> entries = new java.util.ArrayList<>();
                for (int i = 0; i <= k; i++) {
                  entries.add(
                      new FsEntry(
                          name + i,
                          List.of(FsEntry.Kind.values())
                              .get((k + i) % FsEntry.Kind.values().length),
                          size,
                          (k * 0111 + i) & 07777,
                          size - i));
                }
                check(entries.get(0), FsEntry.decode(entries.get(0).encode()));
                FsListing l = new FsListing(entries, k % 2 == 0);
                check(l, FsListing.decode(l.encode(), entries.size()));
                // a listing longer than the request's limit is the guest lying: refused
                org.junit.jupiter.api.Assertions.assertThrows(
                    ProtocolException.class,
                    () -> FsListing.decode(l.encode(), entries.size() - 1));
              } catch (ProtocolException e) {
                throw new AssertionError(e);
              }
            });
  }

  @Test
  void fileSystemRequestsRefuseWhatTheyCannotMean() {
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class, () -> new FsRequest(FsRequest.Op.LIST, "/", "", 0, 0));
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class,
        () -> new FsRequest(FsRequest.Op.LIST, "/", "", 0, FsRequest.MAX_LIST + 1));
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class, () -> FsRequest.of(FsRequest.Op.RENAME, "/a"));
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class, () -> new FsRequest(FsRequest.Op.STAT, "/a", "/b", 0, 0));
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class, () -> new FsRequest(FsRequest.Op.STAT, "/a", "", 4, 0));
    byte[] unknownOp = new PayloadWriter().u8(99).string("/").string("").u8(0).i32(0).toByteArray();
    org.junit.jupiter.api.Assertions.assertThrows(
        ProtocolException.class, () -> FsRequest.decode(unknownOp));
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class, () -> new FsEntry("x", FsEntry.Kind.FILE, -1, 0, 0));
    org.junit.jupiter.api.Assertions.assertThrows(
        IllegalArgumentException.class, () -> new FsEntry("x", FsEntry.Kind.FILE, 0, 010000, 0));
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
            ErrorPayload::decode,
            FsRequest::decode,
            FsEntry::decode,
            b -> FsListing.decode(b, FsRequest.MAX_LIST));
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
