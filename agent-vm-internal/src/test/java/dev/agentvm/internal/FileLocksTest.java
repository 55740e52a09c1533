package dev.agentvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileLocksTest {
  @TempDir Path tmp;

  @Test
  void threadsQueueInsteadOfFailing() throws Exception {
    Path lock = tmp.resolve("sub/x.lock");
    AtomicInteger inside = new AtomicInteger();
    AtomicInteger maxInside = new AtomicInteger();
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      threads.add(
          Threads.daemon(
              () -> {
                try {
                  // two spellings of one file share one monitor
                  Path p = (inside.get() % 2 == 0) ? lock : tmp.resolve("sub/../sub/x.lock");
                  FileLocks.withLock(
                      p,
                      () -> {
                        maxInside.accumulateAndGet(inside.incrementAndGet(), Math::max);
                        java.util.concurrent.locks.LockSupport.parkNanos(5_000_000L);
                        inside.decrementAndGet();
                        return null;
                      });
                } catch (Exception e) {
                  throw new AssertionError(e);
                }
              },
              "locker-" + i));
    }
    threads.forEach(Thread::start);
    for (Thread t : threads) {
      t.join();
    }
    assertEquals(1, maxInside.get());
  }

  @Test
  void hashingAndThreadNames() throws Exception {
    assertEquals(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        Hashing.sha256Hex(new byte[0]));
    Thread t = Threads.numberedDaemons("agentvm-x").newThread(() -> {});
    assertEquals("agentvm-x-1", t.getName());
    assertEquals(true, t.isDaemon());
  }
}
