package dev.agentvm.core;

import static dev.agentvm.core.RawAgentChannel.frame;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.agentvm.core.RawAgentChannel.RawFrame;
import dev.agentvm.core.RawAgentChannel.Reader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes a real guest agent over its real channel for a bounded time (30 s in every build): random
 * frames, mutated valid frames (bit flips, wrong lengths and CRCs, unknown types, oversized
 * lengths), valid frames between garbage, truncated frames followed by disconnects, reconnect
 * storms, and a host that stops reading a command's output. After every round a fresh connection
 * must get its HELLO and PING answered and run {@code echo ok}, by the same agent process (it never
 * restarted).
 *
 * <p>The seed is printed; replay a failure with {@code -Dfuzz.seed=N}, and change the budget with
 * {@code -Dfuzz.seconds=N}.
 */
class ProtocolFuzzIT extends RealLibvirtTest {
  private static final int HELLO = 0x01;
  private static final int PING = 0x02;
  private static final int PONG = 0x03;
  private static final int SHUTDOWN = 0x05;
  private static final int EXEC = 0x10;
  private static final int STDOUT = 0x11;
  private static final int EXIT = 0x13;
  private static final int STATUS = 0x15;
  private static final int[] KNOWN_HOST_TYPES = {0x01, 0x02, 0x10, 0x14, 0x15, 0x20, 0x21, 0x22};

  private Path socket;
  private Path console;
  private Random rnd;
  private int nextId = 1;
  private long agentStart = Long.MIN_VALUE;
  private int reconnects;

  @Test
  void theGuestAgentKeepsServingUnderFuzzing() throws Exception {
    long seed = Long.getLong("fuzz.seed", System.nanoTime());
    long seconds = Long.getLong("fuzz.seconds", 30);
    System.out.println("ProtocolFuzzIT seed=" + seed + " (replay: -Dfuzz.seed=" + seed + ")");
    rnd = new Random(seed);
    VMTemplate t =
        VMTemplate.builder(TestVms.name("fuzz"))
            .resources(new ResourceProfile(1, 512))
            .boot(TestVms.boot())
            .build();
    try (VM vm = conn.define(t)) {
      vm.start();
      vm.awaitAgent(Duration.ofSeconds(90)).close();
      socket = t.agentSocket();
      console = t.consoleLog();
      assertAlive("after boot");
      long end = System.nanoTime() + seconds * 1_000_000_000L;
      int[] counts = new int[6];
      int round = 0;
      while (round < counts.length || System.nanoTime() < end) {
        int kind = round < counts.length ? round : rnd.nextInt(counts.length);
        round++;
        counts[kind]++;
        String what =
            switch (kind) {
              case 0 -> randomFrames();
              case 1 -> mutatedFrames();
              case 2 -> validFramesBetweenGarbage();
              case 3 -> truncatedThenDisconnect();
              case 4 -> reconnectStorm();
              default -> stalledReader();
            };
        assertAlive("round " + round + " (" + what + "), seed " + seed);
      }
      System.out.printf(
          "ProtocolFuzzIT: %d rounds (random %d, mutated %d, between garbage %d, truncated %d,"
              + " reconnect storms %d, stalled reads %d), seed %d%n",
          round, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], seed);
      System.out.println("ProtocolFuzzIT: liveness checks that had to reconnect: " + reconnects);
      assertAlive("at the end, seed " + seed);
    }
    TestVms.assertNothingLeft(conn, t);
  }

  /** The guest console's last lines: the agent logs there what it did with each connection. */
  private String consoleTail() {
    try {
      List<String> lines = java.nio.file.Files.readAllLines(console);
      return "console:\n  "
          + String.join("\n  ", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    } catch (IOException | RuntimeException e) {
      return "console unreadable: " + e;
    }
  }

  private synchronized int id() {
    int id = nextId++;
    return id == 0 ? nextId++ : id;
  }

  private RawAgentChannel open() throws IOException {
    return RawAgentChannel.open(socket, Duration.ofSeconds(30));
  }

  /**
   * A fresh connection: HELLO (re-sent every 3 s, as the document says a host must after a
   * reconnect), PING, and {@code echo ok}; the agent that answers is the one that booted.
   */
  private void assertAlive(String when) throws Exception {
    long deadline = System.nanoTime() + 60_000_000_000L;
    RawAgentChannel ch = open();
    try {
      RawFrame hello = null;
      Set<Integer> helloIds = new HashSet<>();
      long reconnectAt = System.nanoTime() + 12_000_000_000L;
      while (hello == null) {
        if (System.nanoTime() >= deadline) {
          throw new AssertionError("no HELLO answer within 60 s " + when + "\n" + consoleTail());
        }
        if (System.nanoTime() >= reconnectAt) {
          // unanswered for 12 s: connect anew, as the document says a host should
          ch.close();
          ch = open();
          reconnects++;
          reconnectAt = System.nanoTime() + 12_000_000_000L;
        }
        int id = id();
        helloIds.add(id);
        ch.send(frame(HELLO, 0, id, RawAgentChannel.helloPayload("fuzz")));
        long retry = System.nanoTime() + 3_000_000_000L;
        RawFrame f;
        while ((f = ch.poll(Duration.ofNanos(Math.max(1, retry - System.nanoTime())))) != null) {
          if (helloIds.contains(f.id()) && f.type() == HELLO) {
            hello = f;
            break;
          }
        }
      }
      Reader r = new Reader(hello.payload());
      assertEquals(1, r.u16());
      r.string();
      for (int n = r.u16(); n > 0; n--) {
        r.string();
      }
      r.string();
      r.i64();
      long start = r.i64();
      if (agentStart == Long.MIN_VALUE) {
        agentStart = start;
      }
      assertEquals(agentStart, start, "the agent restarted " + when);

      int ping = id();
      ch.send(frame(PING, 0, ping, new byte[] {42}));
      RawFrame pong = ch.nextFor(ping, Duration.ofSeconds(30));
      assertEquals(PONG, pong.type(), when);

      int exec = id();
      ch.send(frame(EXEC, 0, exec, RawAgentChannel.execPayload(1000, "echo", "ok")));
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      while (true) {
        RawFrame f = ch.nextFor(exec, Duration.ofSeconds(30));
        if (f.type() == STDOUT) {
          out.write(f.payload());
          continue;
        }
        assertEquals(EXIT, f.type(), "echo ok " + when + ": " + f);
        assertEquals(0, new Reader(f.payload()).i32(), when);
        break;
      }
      assertEquals("ok\n", out.toString(StandardCharsets.UTF_8), when);
    } finally {
      ch.close();
    }
  }

  private byte[] randomBytes(int max) {
    byte[] b = new byte[rnd.nextInt(max + 1)];
    rnd.nextBytes(b);
    return b;
  }

  /** A frame with a random type the host may send (never SHUTDOWN: it powers the guest off). */
  private byte[] randomValidFrame() {
    int type =
        rnd.nextBoolean()
            ? KNOWN_HOST_TYPES[rnd.nextInt(KNOWN_HOST_TYPES.length)]
            : rnd.nextInt(256);
    if (type == SHUTDOWN) {
      type = STATUS;
    }
    return frame(type, rnd.nextInt(4) == 0 ? rnd.nextInt(0x10000) : 0, id(), randomBytes(300));
  }

  private String randomFrames() throws Exception {
    try (RawAgentChannel ch = open()) {
      for (int i = 0; i < 40; i++) {
        ch.send(rnd.nextBoolean() ? randomBytes(2048) : randomValidFrame());
      }
      Thread.sleep(300);
    }
    return "random bytes and frames";
  }

  /** A valid frame of one of a few kinds, then damaged in one way. */
  private String mutatedFrames() throws Exception {
    try (RawAgentChannel ch = open()) {
      for (int i = 0; i < 30; i++) {
        byte[] f =
            switch (rnd.nextInt(4)) {
              case 0 -> frame(PING, 0, id(), randomBytes(64));
              case 1 -> frame(STATUS, 0, id(), new byte[0]);
              case 2 -> frame(HELLO, 0, id(), RawAgentChannel.helloPayload("fuzz"));
              default -> frame(EXEC, 0, id(), RawAgentChannel.execPayload(100, "true"));
            };
        int n = f.length - 24;
        switch (rnd.nextInt(5)) {
          case 0 -> { // bit flips anywhere, CRCs left alone
            for (int k = 1 + rnd.nextInt(3); k > 0; k--) {
              int bit = rnd.nextInt(f.length * 8);
              f[bit / 8] ^= (byte) (1 << (bit % 8));
            }
          }
          case 1 -> { // a wrong length, header CRC made to match
            long len = Math.max(0, n + rnd.nextInt(64) - 32);
            byte[] payload = Arrays.copyOfRange(f, 20, 20 + n);
            int type = f[5] & 0xFF;
            f = RawAgentChannel.frameWithLength(type, 0, id(), payload, len);
          }
          case 2 -> f[f.length - 1 - rnd.nextInt(4)] ^= (byte) (1 + rnd.nextInt(255)); // frame CRC
          case 3 -> { // an unknown type, CRCs made to match
            int type = 0x40 + rnd.nextInt(0xC0);
            f = frame(type, 0, id(), Arrays.copyOfRange(f, 20, 20 + n));
          }
          default -> // a length far above the limit, header CRC made to match
              f =
                  RawAgentChannel.frameWithLength(
                      PING, 0, id(), new byte[0], (1L << 20) + 1 + rnd.nextInt(Integer.MAX_VALUE));
        }
        ch.send(f);
      }
      Thread.sleep(300);
    }
    return "mutated frames";
  }

  /** Valid PINGs between garbage (partial magics, header prefixes): every PING is answered. */
  private String validFramesBetweenGarbage() throws Exception {
    try (RawAgentChannel ch = open()) {
      Set<Integer> sent = new HashSet<>();
      byte[] sample = frame(PING, 0, 7, new byte[] {1});
      for (int i = 0; i < 30; i++) {
        byte[] garbage =
            switch (rnd.nextInt(4)) {
              case 0 -> "AVM".substring(0, 1 + rnd.nextInt(3)).getBytes(StandardCharsets.US_ASCII);
              // a header prefix: not all 20 bytes, which would be an accepted header whose frame
              // swallows the next one (the document's one deliberate loss)
              case 1 -> Arrays.copyOf(sample, 1 + rnd.nextInt(19));
              case 2 -> "AVMP".getBytes(StandardCharsets.US_ASCII);
              default -> randomBytes(64);
            };
        int id = id();
        sent.add(id);
        ch.send(garbage, frame(PING, 0, id, new byte[] {(byte) i}));
      }
      // a last valid frame: garbage that ended in a header prefix waits for bytes to judge it
      int last = id();
      sent.add(last);
      ch.send(frame(PING, 0, last, new byte[0]));
      long deadline = System.nanoTime() + 30_000_000_000L;
      while (!sent.isEmpty()) {
        RawFrame f = ch.poll(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
        if (f == null) {
          throw new AssertionError("PINGs between garbage not answered: " + sent);
        }
        if (f.type() == PONG) {
          sent.remove(f.id());
        }
      }
    }
    return "valid frames between garbage";
  }

  private String truncatedThenDisconnect() throws Exception {
    for (int i = 0; i < 5; i++) {
      try (RawAgentChannel ch = open()) {
        byte[] f =
            rnd.nextBoolean()
                ? frame(EXEC, 0, id(), RawAgentChannel.execPayload(100, "echo", "cut"))
                : frame(PING, 0, id(), randomBytes(500));
        ch.send(Arrays.copyOf(f, 1 + rnd.nextInt(f.length - 1)));
        Thread.sleep(rnd.nextInt(200));
      }
    }
    return "truncated frames, then disconnects";
  }

  private String reconnectStorm() throws Exception {
    for (int i = 0; i < 40; i++) {
      try (SocketChannel ch = RawAgentChannel.connect(socket, Duration.ofSeconds(30))) {
        if (rnd.nextBoolean()) {
          byte[] hello = frame(HELLO, 0, id(), RawAgentChannel.helloPayload("storm"));
          ch.write(ByteBuffer.wrap(Arrays.copyOf(hello, rnd.nextInt(hello.length + 1))));
          // and hang up at once, reading nothing: the half frames this leaves must not wedge the
          // agent (seed 13989991327982 did, before frames had a deadline; see HostHangUpIT)
        }
      }
    }
    return "reconnect storm";
  }

  /** Starts a command with a lot of output and reads nothing for a while, then hangs up. */
  private String stalledReader() throws Exception {
    try (SocketChannel ch = RawAgentChannel.connect(socket, Duration.ofSeconds(30))) {
      byte[] exec =
          frame(
              EXEC,
              0,
              id(),
              RawAgentChannel.execPayload(
                  64L << 20, "sh", "-c", "head -c 4000000 /dev/zero; echo done >&2"));
      ch.write(ByteBuffer.wrap(exec));
      ch.write(ByteBuffer.wrap(frame(PING, 0, id(), new byte[0])));
      Thread.sleep(3000 + rnd.nextInt(3000));
      ByteBuffer some = ByteBuffer.allocate(4096);
      ch.read(some); // a little, then nothing more
    }
    return "stalled reader";
  }
}
