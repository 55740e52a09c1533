package dev.agentvm.execution;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.internal.LogContext;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.search.Search;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.MDC;
import org.slf4j.MdcForTests;

/** Pool logic on a fake factory and a fake clock: no VMs here, only the bookkeeping. */
class VMPoolTest {
  /** Makes named placeholders; counts what lives; can be told to fail or to judge VMs unhealthy. */
  static final class FakeFactory implements VmFactory {
    final Set<String> alive = ConcurrentHashMap.newKeySet();
    final List<String> destroyed = Collections.synchronizedList(new ArrayList<>());
    final AtomicInteger created = new AtomicInteger();
    final AtomicInteger maxAlive = new AtomicInteger();
    final AtomicBoolean failing = new AtomicBoolean();
    final Set<String> unhealthy = ConcurrentHashMap.newKeySet();

    /** The pool clock's time of every attempt to make a VM, failed ones too. */
    final List<Long> attempts = Collections.synchronizedList(new ArrayList<>());

    /** What the MDC held during each create and destroy: "create name {k=v}". */
    final List<String> contexts = Collections.synchronizedList(new ArrayList<>());

    volatile long createMillis = 0;

    @Override
    public PooledVm create(String name, long nowNanos) throws Exception {
      attempts.add(nowNanos);
      contexts.add("create " + name + " " + new TreeMap<>(mdc()));
      if (createMillis > 0) {
        Thread.sleep(createMillis);
      }
      if (failing.get()) {
        throw new IllegalStateException("image is broken");
      }
      alive.add(name);
      created.incrementAndGet();
      maxAlive.accumulateAndGet(alive.size(), Math::max);
      return new PooledVm(name, null, null, kind(), nowNanos);
    }

    @Override
    public void destroy(PooledVm vm) {
      contexts.add("destroy " + vm.name() + " " + new TreeMap<>(mdc()));
      alive.remove(vm.name());
      destroyed.add(vm.name());
    }

    @Override
    public boolean isHealthy(PooledVm vm) {
      return !unhealthy.contains(vm.name());
    }

    @Override
    public String kind() {
      return "fake";
    }
  }

  private final FakeFactory factory = new FakeFactory();
  private final AtomicLong now = new AtomicLong(1_000_000_000L);
  private final SimpleMeterRegistry registry = new SimpleMeterRegistry();

  @BeforeAll
  static void workingMdc() {
    MdcForTests.install(); // slf4j-simple's MDC keeps nothing; this one keeps and inherits
  }

  @AfterEach
  void cleanMdc() {
    MDC.clear();
  }

  private static Map<String, String> mdc() {
    Map<String, String> m = MDC.getCopyOfContextMap();
    return m == null ? Map.of() : new HashMap<>(m);
  }

  private static PoolConfig config(int min, int max, String prefix) {
    return PoolConfig.DEFAULT
        .withSize(min, max)
        .withTtl(Duration.ofMinutes(10))
        .withNamePrefix(prefix);
  }

  private VMPool pool(int min, int max) {
    return VMPool.startManual(factory, config(min, max, "fake-"), registry, now::get);
  }

  private static double vms(MeterRegistry r, String pool, String state) {
    return r.get("agentvm.pool.vms").tag("pool", pool).tag("state", state).gauge().value();
  }

  @Test
  void prewarmsToMinSizeAndRefillsAfterRelease() throws Exception {
    try (VMPool p = pool(2, 4)) {
      p.awaitQuiet(Duration.ofSeconds(5));
      assertEquals(2, p.idleCount());
      PooledVm a = p.acquire(Duration.ofSeconds(1));
      assertEquals(1, p.inUseCount());
      p.release(a);
      p.awaitQuiet(Duration.ofSeconds(5));
      assertTrue(factory.destroyed.contains(a.name()), "a used VM is destroyed, never reused");
      assertEquals(2, p.idleCount());
      PooledVm b = p.acquire(Duration.ofSeconds(1));
      assertNotSame(a, b);
      assertTrue(!b.name().equals(a.name()));
      p.release(b);
      assertEquals(
          2.0, registry.get("agentvm.pool.discarded").tag("reason", "used").counter().count());
    }
    assertEquals(Set.of(), factory.alive, "close removes every VM");
  }

  @Test
  void theWarmUpIsReportedStepByStepUntilTheMinimumIsIdle() throws Exception {
    factory.createMillis = 50;
    List<dev.agentvm.image.Progress.Step> steps = Collections.synchronizedList(new ArrayList<>());
    try (VMPool p = pool(3, 4).progress(steps::add)) {
      p.awaitQuiet(Duration.ofSeconds(5));
      assertEquals(3, steps.size(), steps.toString());
      dev.agentvm.image.Progress.Step last = steps.get(2);
      assertTrue(last.finished() && last.total() == 3, last.toString());
      assertTrue(last.task().startsWith("pool "), last.toString());
      p.release(p.acquire(Duration.ofSeconds(1)));
      p.awaitQuiet(Duration.ofSeconds(5));
      assertEquals(3, steps.size(), "a refill after the warm-up is not reported: " + steps);
    }
  }

  @Test
  void waitersAreServedInArrivalOrderAndMaxIsNeverExceeded() throws Exception {
    factory.createMillis = 20;
    try (VMPool p = pool(0, 1)) {
      PooledVm first = p.acquire(Duration.ofSeconds(5));
      List<Integer> order = Collections.synchronizedList(new ArrayList<>());
      ExecutorService ex = Executors.newFixedThreadPool(3);
      List<Future<?>> fs = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        int n = i;
        fs.add(
            ex.submit(
                () -> {
                  PooledVm v = p.acquire(Duration.ofSeconds(10));
                  order.add(n);
                  p.release(v);
                  return null;
                }));
        // arrive in order 0, 1, 2: the next waiter is started only once this one waits
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (p.waitingCount() < n + 1 && System.nanoTime() < deadline) {
          Thread.sleep(1);
        }
        assertEquals(n + 1, p.waitingCount(), "waiters queued");
      }
      p.release(first);
      for (Future<?> f : fs) {
        f.get(10, TimeUnit.SECONDS);
      }
      ex.shutdown();
      assertEquals(List.of(0, 1, 2), order);
      assertEquals(1, factory.maxAlive.get(), "never more than maxSize VMs at once");
    }
  }

  @Test
  void manyThreadsNeverGetTheSameVmAndStayWithinMax() throws Exception {
    try (VMPool p = pool(2, 5)) {
      Set<String> inHand = ConcurrentHashMap.newKeySet();
      AtomicInteger clashes = new AtomicInteger();
      ExecutorService ex = Executors.newFixedThreadPool(16);
      CountDownLatch done = new CountDownLatch(16);
      for (int t = 0; t < 16; t++) {
        ex.execute(
            () -> {
              try {
                for (int i = 0; i < 25; i++) {
                  PooledVm v = p.acquire(Duration.ofSeconds(20));
                  if (!inHand.add(v.name())) {
                    clashes.incrementAndGet();
                  }
                  inHand.remove(v.name());
                  p.release(v);
                }
              } catch (Exception e) {
                clashes.addAndGet(1000);
              } finally {
                done.countDown();
              }
            });
      }
      assertTrue(done.await(60, TimeUnit.SECONDS));
      ex.shutdown();
      assertEquals(0, clashes.get());
      assertTrue(factory.maxAlive.get() <= 5, "alive at most " + factory.maxAlive.get());
      p.awaitQuiet(Duration.ofSeconds(10)); // removal runs on the workers
      assertTrue(factory.destroyed.size() >= 16 * 25, "every used VM destroyed");
    }
  }

  @Test
  void acquireTimesOutWithTheStateInTheMessage() throws Exception {
    try (VMPool p = pool(0, 1)) {
      PooledVm held = p.acquire(Duration.ofSeconds(5));
      PoolExhaustedException e =
          assertThrows(PoolExhaustedException.class, () -> p.acquire(Duration.ofMillis(100)));
      assertTrue(e.getMessage().contains("in use 1"), e.getMessage());
      assertTrue(e.getMessage().contains("max 1"), e.getMessage());
      p.release(held);
    }
  }

  @Test
  void aFailingFactoryFailsTheWaiterWithTheCauseInsteadOfATimeout() throws Exception {
    factory.failing.set(true);
    try (VMPool p = pool(0, 2)) {
      long t0 = System.nanoTime();
      PoolExhaustedException e =
          assertThrows(PoolExhaustedException.class, () -> p.acquire(Duration.ofSeconds(30)));
      assertTrue(e.getMessage().contains("image is broken"), e.getMessage());
      assertTrue(System.nanoTime() - t0 < Duration.ofSeconds(5).toNanos(), "fails fast");
    }
  }

  @Test
  void cleanupReplacesIdleVmsPastTheirTtlOrUnhealthy() throws Exception {
    try (VMPool p = pool(2, 4)) {
      p.awaitQuiet(Duration.ofSeconds(5));
      List<String> first = new ArrayList<>(factory.alive);
      now.addAndGet(Duration.ofMinutes(5).toNanos());
      long next = p.cleanup(now.get());
      assertTrue(next <= Duration.ofMinutes(5).toNanos(), "wakes up by the next expiry: " + next);
      p.awaitQuiet(Duration.ofSeconds(5));
      assertEquals(Set.copyOf(first), factory.alive, "young VMs stay");

      now.addAndGet(Duration.ofMinutes(6).toNanos());
      p.cleanup(now.get());
      p.awaitQuiet(Duration.ofSeconds(5));
      assertEquals(2, p.idleCount());
      assertTrue(factory.destroyed.containsAll(first), "expired VMs are replaced");

      String sick = factory.alive.iterator().next();
      factory.unhealthy.add(sick);
      p.cleanup(now.get());
      p.awaitQuiet(Duration.ofSeconds(5));
      assertTrue(factory.destroyed.contains(sick));
      assertEquals(2, p.idleCount());
    }
  }

  @Test
  void closeFailsWaitersAndDestroysEverything() throws Exception {
    factory.createMillis = 200;
    VMPool p = pool(1, 1);
    PooledVm held = p.acquire(Duration.ofSeconds(5));
    ExecutorService ex = Executors.newSingleThreadExecutor();
    Future<?> waiter = ex.submit(() -> p.acquire(Duration.ofSeconds(30)));
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (p.waitingCount() < 1 && System.nanoTime() < deadline) {
      Thread.sleep(1);
    }
    assertEquals(1, p.waitingCount(), "the waiter waits before the pool closes");
    new Thread(
            () -> {
              try {
                Thread.sleep(300);
              } catch (InterruptedException ignored) {
                // the test ends anyway
              }
              p.release(held);
            })
        .start();
    p.close();
    java.util.concurrent.ExecutionException e =
        assertThrows(
            java.util.concurrent.ExecutionException.class, () -> waiter.get(5, TimeUnit.SECONDS));
    assertTrue(e.getCause() instanceof IllegalStateException, e.toString());
    ex.shutdown();
    assertEquals(Set.of(), factory.alive);
    assertThrows(IllegalStateException.class, () -> p.acquire(Duration.ofMillis(10)));
    p.close(); // idempotent
  }

  @Test
  void twoPoolsInOneRegistryAreBothVisibleAndTaggedApart() throws Exception {
    FakeFactory other = new FakeFactory();
    try (VMPool a = pool(2, 4);
        VMPool b = VMPool.startManual(other, config(1, 4, "other-"), registry, now::get)) {
      a.awaitQuiet(Duration.ofSeconds(5));
      b.awaitQuiet(Duration.ofSeconds(5));
      assertEquals("fake", a.name(), "the name comes from the VM name prefix");
      assertEquals("other", b.name());
      assertEquals(2, vms(registry, "fake", "idle"));
      assertEquals(1, vms(registry, "other", "idle"), "the second pool's gauges are there too");
      a.release(a.acquire(Duration.ofSeconds(1)));
      a.awaitQuiet(Duration.ofSeconds(5));
      assertEquals(3, creates(registry, "fake", "success"), "two, then one replacement");
      assertEquals(1, creates(registry, "other", "success"));
      assertEquals(
          1, registry.get("agentvm.pool.acquire.wait").tag("pool", "fake").timer().count());
      assertNull(
          registry.find("agentvm.pool.acquire.wait").tag("pool", "other").timer(),
          "timers are not merged across pools");
      assertEquals(
          1.0,
          registry
              .get("agentvm.pool.discarded")
              .tags("pool", "fake", "reason", "used")
              .counter()
              .count());
    }
    assertTrue(registry.getMeters().isEmpty(), "closed pools take their meters with them");
  }

  private static long creates(MeterRegistry r, String pool, String outcome) {
    return Search.in(r)
        .name("agentvm.pool.vm.create")
        .tags("pool", pool, "kind", "fake", "outcome", outcome)
        .timers()
        .stream()
        .mapToLong(t -> t.count())
        .sum();
  }

  @Test
  void aSecondLivePoolOfTheSameNameInOneRegistryIsRefusedNotSilentlyMerged() throws Exception {
    try (VMPool a = pool(0, 1)) {
      assertEquals("fake", a.name());
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () ->
                  VMPool.startManual(new FakeFactory(), config(0, 1, "fake-"), registry, now::get));
      assertTrue(e.getMessage().contains("pool named 'fake'"), e.getMessage());
      assertTrue(e.getMessage().contains("own name"), e.getMessage());
      try (VMPool named =
          VMPool.startManual(
              new FakeFactory(), config(0, 1, "fake-").withName("fake-2"), registry, now::get)) {
        assertEquals("fake-2", named.name(), "PoolConfig.withName sets them apart");
        assertEquals(0, vms(registry, "fake-2", "idle"));
      }
      assertEquals(0, vms(registry, "fake", "idle"), "the first pool still reports");
    }
    try (VMPool again = pool(0, 1)) {
      assertEquals("fake", again.name(), "a closed pool's name is free again");
      assertEquals(0, vms(registry, "fake", "idle"));
    }
    assertThrows(IllegalArgumentException.class, () -> PoolConfig.DEFAULT.withName("no spaces"));
  }

  @Test
  void thePoolIsAMeterBinderForRegistriesWiredLater() throws Exception {
    try (VMPool p = VMPool.startManual(factory, config(1, 2, "fake-"), null, now::get, () -> 0)) {
      p.awaitQuiet(Duration.ofSeconds(5));
      p.release(p.acquire(Duration.ofSeconds(1))); // recorded nowhere: no registry yet
      p.awaitQuiet(Duration.ofSeconds(5));
      SimpleMeterRegistry later = new SimpleMeterRegistry();
      io.micrometer.core.instrument.binder.MeterBinder binder = p;
      binder.bindTo(later);
      binder.bindTo(later); // twice: nothing more
      assertEquals(1, vms(later, "fake", "idle"), "gauges read the pool's state at once");
      assertEquals(0, vms(later, "fake", "in_use"));
      assertEquals(0, later.get("agentvm.pool.waiters").tag("pool", "fake").gauge().value());
      assertEquals(
          0, later.get("agentvm.pool.refill.failures").tag("pool", "fake").gauge().value());
      assertNull(later.find("agentvm.pool.acquire.wait").timer(), "what came before is not there");
      p.release(p.acquire(Duration.ofSeconds(1)));
      assertEquals(1, later.get("agentvm.pool.acquire.wait").tag("pool", "fake").timer().count());
      assertEquals(
          1.0,
          later
              .get("agentvm.pool.discarded")
              .tags("pool", "fake", "reason", "used")
              .counter()
              .count());
    }
  }

  @Test
  void poolThreadsLogWithThePoolAndTheVmInTheMdcAndNothingOfTheCallers() throws Exception {
    MDC.put(LogContext.EXECUTION, "the-callers");
    try (VMPool p =
        VMPool.startManual(factory, config(0, 1, "fake-").withParallelism(1), registry, now::get)) {
      // the worker thread is made now, by this thread: an inheriting MDC would hand it our value
      PooledVm vm = p.acquire(Duration.ofSeconds(5));
      p.release(vm);
      p.awaitQuiet(Duration.ofSeconds(5));
      PooledVm next = p.acquire(Duration.ofSeconds(5));
      p.release(next);
      p.awaitQuiet(Duration.ofSeconds(5));
      assertEquals(
          List.of(
              "create " + vm.name() + " {pool=fake, vm=" + vm.name() + "}",
              "destroy " + vm.name() + " {pool=fake, vm=" + vm.name() + "}",
              "create " + next.name() + " {pool=fake, vm=" + next.name() + "}",
              "destroy " + next.name() + " {pool=fake, vm=" + next.name() + "}"),
          factory.contexts);
    }
    assertEquals(Map.of(LogContext.EXECUTION, "the-callers"), mdc(), "the caller's MDC as before");
  }

  @Test
  void aFailingFactoryIsRetriedAfterWaitsThatDoubleUpToTheCapAndStartOverOnceItWorks()
      throws Exception {
    factory.failing.set(true);
    long step = Duration.ofMillis(100).toNanos();
    // jitter 0: each wait is the lower bound, half its cap
    try (VMPool p =
        VMPool.startManual(factory, config(1, 2, "fake-"), registry, now::get, () -> 0)) {
      p.awaitQuiet(Duration.ofSeconds(5));
      long end = now.get() + Duration.ofMinutes(10).toNanos();
      while (now.get() < end) {
        now.addAndGet(step);
        p.cleanup(now.get()); // what the housekeeping thread would run: refill
        p.awaitQuiet(Duration.ofSeconds(5));
      }
      List<Long> at = List.copyOf(factory.attempts);
      List<Long> gaps = new ArrayList<>();
      for (int i = 1; i < at.size(); i++) {
        gaps.add(at.get(i) - at.get(i - 1));
      }
      // 0.5, 1, 2, ... 16 s, then every 30 s (the least wait under the 60 s cap): 25 attempts,
      // where a retry a second made 600
      assertTrue(at.size() <= 30, "10 minutes of a broken factory: " + at.size() + " attempts");
      assertTrue(at.size() >= 15, "but it keeps trying: " + at.size());
      assertTrue(gaps.get(0) >= RefillBackoff.FIRST.toNanos() / 2, "first wait " + gaps.get(0));
      for (int i = 1; i < gaps.size(); i++) {
        assertTrue(gaps.get(i) >= gaps.get(i - 1), "waits never shrink: " + gaps);
        assertTrue(gaps.get(i) <= RefillBackoff.MAX.toNanos() + step, "capped: " + gaps);
      }
      assertTrue(
          gaps.get(gaps.size() - 1) >= RefillBackoff.MAX.toNanos() / 2, "reaches the cap: " + gaps);
      assertEquals(at.size(), failures(p), "failures in a row, as a gauge");
      assertEquals(at.size(), creates(registry, "fake", "failure"));

      factory.failing.set(false);
      int before = factory.attempts.size();
      while (p.idleCount() == 0 && now.get() < end + RefillBackoff.MAX.toNanos() * 2) {
        now.addAndGet(step);
        p.cleanup(now.get());
        p.awaitQuiet(Duration.ofSeconds(5));
      }
      assertEquals(1, p.idleCount(), "refilled on the next attempt");
      assertEquals(before + 1, factory.attempts.size());
      assertEquals(0, failures(p), "the count of failures in a row is back to 0");

      factory.failing.set(true);
      p.release(p.acquire(Duration.ofSeconds(1))); // its replacement fails
      p.awaitQuiet(Duration.ofSeconds(5));
      long failedAt = factory.attempts.get(factory.attempts.size() - 1);
      int n = factory.attempts.size();
      while (factory.attempts.size() == n) {
        now.addAndGet(step);
        p.cleanup(now.get());
        p.awaitQuiet(Duration.ofSeconds(5));
      }
      long gap = factory.attempts.get(n) - failedAt;
      assertTrue(gap <= RefillBackoff.FIRST.toNanos(), "the back-off started over: " + gap);
    }
  }

  private double failures(VMPool p) {
    return registry.get("agentvm.pool.refill.failures").tag("pool", p.name()).gauge().value();
  }

  @Test
  void configIsValidated() {
    assertThrows(IllegalArgumentException.class, () -> PoolConfig.DEFAULT.withSize(3, 2));
    assertThrows(IllegalArgumentException.class, () -> PoolConfig.DEFAULT.withSize(-1, 2));
    assertThrows(IllegalArgumentException.class, () -> PoolConfig.DEFAULT.withSize(0, 0));
    assertThrows(IllegalArgumentException.class, () -> PoolConfig.DEFAULT.withTtl(Duration.ZERO));
    assertThrows(IllegalArgumentException.class, () -> PoolConfig.DEFAULT.withParallelism(0));
  }
}
