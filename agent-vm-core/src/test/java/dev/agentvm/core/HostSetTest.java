package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Placement logic over fake hosts; the real hosts and their failures are in HostSetIT. */
class HostSetTest {
  @RegisterExtension final TempStateDirectory state = new TempStateDirectory();

  /** A host whose capacity, failure and hang the test sets. */
  static final class Host extends FakeHypervisor {
    final String uri;
    volatile HostCapacity capacity;
    volatile boolean failing;
    volatile boolean hanging;
    volatile boolean defineFails;

    /** Null: a host that shares this machine's files; else whether the files are staged there. */
    volatile @org.jspecify.annotations.Nullable Boolean staged;

    Host(String uri, HostCapacity capacity) {
      this.uri = uri;
      this.capacity = capacity;
    }

    @Override
    public String uri() {
      return uri;
    }

    @Override
    public HostCapacity capacity() {
      while (hanging) {
        try {
          Thread.sleep(10);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
      if (failing) {
        throw new ConnectionException(uri, "host unreachable", null);
      }
      return capacity;
    }

    @Override
    public java.util.Optional<HostStorage> hostStorage() {
      Boolean known = staged;
      if (known == null) {
        return java.util.Optional.empty();
      }
      return java.util.Optional.of(
          new HostStorage() {
            @Override
            public Path path(String name) {
              throw new UnsupportedOperationException();
            }

            @Override
            public Path stage(Path local) {
              throw new UnsupportedOperationException();
            }

            @Override
            public Path createOverlay(String name, Path backing, long capacityBytes) {
              throw new UnsupportedOperationException();
            }

            @Override
            public void delete(String name) {
              throw new UnsupportedOperationException();
            }

            @Override
            public List<String> names(String prefix) {
              return List.of();
            }

            @Override
            public boolean knowsStaged(Path local) {
              return known;
            }
          });
    }

    @Override
    public dev.agentvm.core.spi.DomainHandle define(VMTemplate t, VirtType type) {
      if (defineFails) {
        throw new ConnectionException(uri, "connection reset", null);
      }
      return super.define(t, type);
    }
  }

  private final Map<String, Host> fakes = new ConcurrentHashMap<>();

  private Host fake(String uri, int cpus, long availableMiB, int active) {
    Host h = new Host(uri, new HostCapacity(cpus, 64L << 30, availableMiB << 20, active));
    fakes.put(uri, h);
    return h;
  }

  private HostSet.Builder set() {
    return HostSet.builder()
        .opener(uri -> LibvirtConnection.using(fakes.get(uri)))
        .refreshEvery(Duration.ofMillis(100))
        .backoff(Duration.ofMillis(100), Duration.ofMillis(200))
        .placeWait(Duration.ofSeconds(5));
  }

  private static VMTemplate vm(int memoryMiB) {
    return VMTemplate.builder(TestVms.name("place"))
        .resources(new ResourceProfile(1, memoryMiB))
        .boot(new BootSource(Path.of("/k"), Path.of("/i"), ""))
        .virtType(VirtType.QEMU)
        .build();
  }

  private static void await(HostSet s, java.util.function.Predicate<List<HostSet.HostStatus>> p)
      throws InterruptedException {
    long end = System.nanoTime() + 10_000_000_000L;
    while (!p.test(s.hosts()) && System.nanoTime() < end) {
      Thread.sleep(20);
    }
    assertTrue(p.test(s.hosts()), s.hosts().toString());
  }

  private static Map<String, Integer> count(HostSet s, int n, int memoryMiB) {
    Map<String, Integer> where = new HashMap<>();
    for (int i = 0; i < n; i++) {
      where.merge(s.place(vm(memoryMiB)).uri(), 1, Integer::sum);
    }
    return where;
  }

  @Test
  void equalHostsShareABurstAndWeightsTilt() throws Exception {
    fake("fake://a", 2, 8192, 0);
    fake("fake://b", 2, 8192, 0);
    try (HostSet s =
        set().refreshEvery(Duration.ofSeconds(30)).host("fake://a").host("fake://b").build()) {
      await(s, hs -> hs.get(0).up() && hs.get(1).up());
      assertEquals(Map.of("fake://a", 5, "fake://b", 5), count(s, 10, 256));
    }
    fake("fake://c", 2, 8192, 0);
    fake("fake://d", 2, 8192, 0);
    try (HostSet s =
        set()
            .refreshEvery(Duration.ofSeconds(30))
            .host("fake://c", 2, Map.of())
            .host("fake://d")
            .build()) {
      await(s, hs -> hs.get(0).up() && hs.get(1).up());
      Map<String, Integer> where = count(s, 9, 256);
      assertEquals(Map.of("fake://c", 6, "fake://d", 3), where, "weight 2 takes twice as many");
    }
  }

  @Test
  void memoryAndLabelsRuleHostsOutAndTheErrorSaysWhy() {
    fake("fake://small", 8, 700, 0); // 700 - 512 reserve: a 256 MiB VM does not fit
    fake("fake://big", 1, 4096, 3);
    try (HostSet s =
        set()
            .host("fake://small", 1, Map.of("zone", "a"))
            .host("fake://big", 1, Map.of("zone", "b"))
            .build()) {
      assertEquals("fake://big", s.place(vm(256)).uri());
      NoHostAvailableException e =
          assertThrows(NoHostAvailableException.class, () -> s.place(vm(256), Map.of("zone", "a")));
      assertTrue(
          e.getMessage().contains("fake://small: 700 MiB available, 512 MiB kept"), e.getMessage());
      assertTrue(
          e.getMessage().contains("fake://big: labels {zone=b} do not match {zone=a}"),
          e.getMessage());
      assertThrows(NoHostAvailableException.class, () -> s.place(vm(8192)));
      // no host could ever match: refused at once, not after the placement wait
      assertTimeoutPreemptively(
          Duration.ofSeconds(2),
          () ->
              assertThrows(
                  NoHostAvailableException.class, () -> s.place(vm(256), Map.of("zone", "c"))));
    }
  }

  @Test
  void aFailingHostIsSkippedRetriedAndRejoins() throws Exception {
    fake("fake://a", 2, 8192, 0);
    Host b = fake("fake://b", 2, 8192, 0);
    b.failing = true;
    try (HostSet s = set().host("fake://a").host("fake://b").build()) {
      await(s, hs -> hs.get(0).up() && hs.get(1).lastError().isPresent());
      HostSet.HostStatus down = s.hosts().get(1);
      assertFalse(down.up());
      assertTrue(down.lastError().orElseThrow().contains("fake://b"), down.toString());
      assertEquals(Map.of("fake://a", 4), count(s, 4, 256), "new work goes elsewhere");
      b.failing = false;
      await(s, hs -> hs.get(1).up());
      assertTrue(count(s, 6, 256).containsKey("fake://b"), "it rejoined");
    }
  }

  @Test
  void aHostThatStopsAnsweringIsPassedOverWithinTheLimitAndNeverDelaysAPlacement()
      throws Exception {
    fake("fake://a", 2, 8192, 0);
    Host b = fake("fake://b", 2, 8192, 0);
    try (HostSet s =
        set().answerWithin(Duration.ofMillis(300)).host("fake://a").host("fake://b").build()) {
      await(s, hs -> hs.get(0).up() && hs.get(1).up());
      b.hanging = true; // its next check blocks in its own thread until told otherwise
      await(s, hs -> !hs.get(1).up());
      assertTrue(
          s.hosts().get(1).lastError().orElseThrow().startsWith("fake://b has not answered for"),
          s.hosts().toString());
      Map<String, Integer> where =
          assertTimeoutPreemptively(Duration.ofSeconds(2), () -> count(s, 20, 256));
      assertEquals(Map.of("fake://a", 20), where, "nothing went to the host that hangs");
      b.hanging = false;
      await(s, hs -> hs.get(1).up()); // its late answer counts: it is back
    }
  }

  @Test
  void defineMovesOnWhenTheChosenHostsConnectionFails() throws Exception {
    Host a = fake("fake://a", 4, 8192, 0);
    fake("fake://b", 2, 8192, 0);
    a.defineFails = true; // a scores higher (more CPUs) and fails
    try (HostSet s =
        set()
            .backoff(Duration.ofSeconds(30), Duration.ofSeconds(60))
            .host("fake://a")
            .host("fake://b")
            .build()) {
      await(s, hs -> hs.get(0).up() && hs.get(1).up());
      try (VM v = s.define(vm(256))) {
        assertEquals(VMState.DEFINED, v.state());
        assertTrue(fakes.get("fake://b").domainNames().contains(v.name()));
      }
      assertFalse(s.hosts().get(0).up(), "marked down at once");
    }
    assertThrows(IllegalArgumentException.class, () -> HostSet.builder().build());
    assertThrows(IllegalArgumentException.class, () -> HostSet.builder().host("x").host("x"));
    assertThrows(IllegalArgumentException.class, () -> HostSet.builder().host("x", 0, Map.of()));
    assertThrows(
        IllegalArgumentException.class,
        () -> HostSet.builder().backoff(Duration.ofMillis(1), Duration.ofSeconds(1)));
    assertThrows(
        IllegalArgumentException.class,
        () -> HostSet.builder().backoff(Duration.ofSeconds(2), Duration.ofSeconds(1)));
    assertThrows(
        IllegalArgumentException.class, () -> HostSet.builder().placeWait(Duration.ofHours(2)));
  }

  @Test
  void onHostMovesOnOnlyForALostConnectionEvenWhenItIsWrapped() throws Exception {
    fake("fake://a", 4, 8192, 0);
    fake("fake://b", 2, 8192, 0);
    try (HostSet s =
        set()
            .backoff(Duration.ofSeconds(30), Duration.ofSeconds(60))
            .host("fake://a")
            .host("fake://b")
            .build()) {
      await(s, hs -> hs.get(0).up() && hs.get(1).up());
      ResourceProfile one = new ResourceProfile(1, 256);
      List<String> tried = new java.util.ArrayList<>();
      String made =
          s.onHost(
              "sandbox x",
              one,
              Map.of(),
              c -> {
                tried.add(c.uri());
                if (c.uri().equals("fake://a")) {
                  // a sandbox's failure, caused by its host going away
                  throw new IllegalStateException(
                      "creating failed", new ConnectionException(c.uri(), "gone", null));
                }
                return c.uri();
              });
      assertEquals("fake://b", made);
      assertEquals(List.of("fake://a", "fake://b"), tried);
      assertFalse(s.hosts().get(0).up(), "marked down at once");
      // any other failure is the caller's: handed back, the host stays up
      IllegalArgumentException other =
          assertThrows(
              IllegalArgumentException.class,
              () ->
                  s.onHost(
                      "sandbox y",
                      one,
                      Map.of(),
                      c -> {
                        throw new IllegalArgumentException("bad spec");
                      }));
      assertEquals("bad spec", other.getMessage());
      assertTrue(s.hosts().get(1).up());
      assertEquals("fake://b", s.connection("fake://b").orElseThrow().uri());
      assertThrows(IllegalArgumentException.class, () -> s.connection("fake://c"));
      // every host failing: none left
      assertThrows(
          NoHostAvailableException.class,
          () ->
              s.onHost(
                  "sandbox z",
                  one,
                  Map.of(),
                  c -> {
                    throw new ConnectionException(c.uri(), "gone", null);
                  }));
    }
  }

  @Test
  void aHostThatMustFirstReceiveTheFilesCountsOneDomainMoreAndStillGetsItsShare() throws Exception {
    fake("fake://a", 2, 8192, 0).staged = false;
    fake("fake://b", 2, 8192, 0).staged = true;
    fake("fake://c", 2, 8192, 0); // shares this machine's files
    try (HostSet s = set().host("fake://a").host("fake://b").host("fake://c").build()) {
      await(s, hs -> hs.stream().allMatch(HostSet.HostStatus::up));
      assertEquals("fake://b", s.place(vm(256)).uri(), "equal hosts: not the one without files");
      assertEquals("fake://c", s.place(vm(256)).uri(), "one that needs none sent");
      ResourceProfile one = new ResourceProfile(1, 256);
      assertEquals(
          "fake://a",
          s.onHost("none", one, Map.of(), c -> false, List.of(), LibvirtConnection::uri),
          "no files named: no host counts more");
      // the host that has to receive them counts one domain more, and no more: a burst spreads
      Map<String, Integer> where = count(s, 9, 256);
      assertTrue(where.getOrDefault("fake://a", 0) >= 2, where.toString());
    }
  }

  @Test
  void aPreferredHostComesFirstAndAFailingPreferenceCountsAsNone() throws Exception {
    fake("fake://a", 4, 8192, 0);
    fake("fake://b", 2, 8192, 0);
    try (HostSet s = set().host("fake://a").host("fake://b").build()) {
      await(s, hs -> hs.get(0).up() && hs.get(1).up());
      ResourceProfile one = new ResourceProfile(1, 256);
      assertEquals(
          "fake://b",
          s.onHost("pref", one, Map.of(), c -> c.uri().equals("fake://b"), LibvirtConnection::uri),
          "preferred over the higher score");
      assertEquals(
          "fake://a",
          s.onHost(
              "pref",
              one,
              Map.of(),
              c -> {
                throw new IllegalStateException("no hint");
              },
              LibvirtConnection::uri));
    }
  }

  @Test
  void noPlacementLandsOnADownOrFullHost() {
    qt().withExamples(40)
        .forAll(
            lists().of(integers().between(0, 4096)).ofSizeBetween(1, 4),
            integers().between(128, 1024))
        .checkAssert(
            (availables, need) -> {
              HostSet.Builder b =
                  set().placeWait(Duration.ZERO).refreshEvery(Duration.ofSeconds(30));
              String tag = Long.toHexString(System.nanoTime());
              for (int i = 0; i < availables.size(); i++) {
                String uri = "fake://p" + tag + "-" + i;
                Host h = fake(uri, 1 + i % 3, availables.get(i), i);
                h.failing = i % 2 == 1;
                b.host(uri);
              }
              try (HostSet s = b.build()) {
                long end = System.nanoTime() + 5_000_000_000L;
                while (s.hosts().stream().anyMatch(h -> !h.up() && h.lastError().isEmpty())
                    && System.nanoTime() < end) {
                  try {
                    Thread.sleep(5);
                  } catch (InterruptedException e) {
                    throw new AssertionError(e);
                  }
                }
                assertTrue(
                    s.hosts().stream().allMatch(h -> h.up() || h.lastError().isPresent()),
                    "every host was reached: " + s.hosts());
                Map<String, Long> left = new HashMap<>();
                for (HostSet.HostStatus h : s.hosts()) {
                  left.put(
                      h.uri(),
                      h.capacity().map(HostCapacity::availableBytes).orElse(0L) - (512L << 20));
                }
                for (int n = 0; n < 6; n++) {
                  try {
                    String uri = s.place(vm(need)).uri();
                    HostSet.HostStatus h =
                        s.hosts().stream()
                            .filter(x -> x.uri().equals(uri))
                            .findFirst()
                            .orElseThrow();
                    assertTrue(h.up(), "placed on a down host: " + h);
                    long after = left.merge(uri, -((long) need << 20), Long::sum);
                    assertTrue(after >= 0, "placed beyond the memory of " + h);
                  } catch (NoHostAvailableException e) {
                    assertTrue(
                        left.entrySet().stream()
                            .noneMatch(
                                en ->
                                    en.getValue() >= ((long) need << 20)
                                        && s.hosts().stream()
                                            .anyMatch(h -> h.uri().equals(en.getKey()) && h.up())),
                        "refused while a host had room: " + e.getMessage());
                  }
                }
              }
            });
  }
}
