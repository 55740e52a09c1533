package dev.agentvm.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.longs;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class KernelModulesTest {
  private static final String DEP =
      """
      kernel/fs/9p/9p.ko.xz: kernel/fs/netfs/netfs.ko.xz kernel/fs/fscache/fscache.ko.xz \
      kernel/net/9p/9pnet.ko.xz
      kernel/net/9p/9pnet.ko.xz:
      kernel/fs/netfs/netfs.ko.xz:
      kernel/fs/fscache/fscache.ko.xz: kernel/fs/netfs/netfs.ko.xz
      kernel/drivers/char/virtio-console.ko:""";

  @Test
  void dependenciesComeFirst() {
    KernelModules km = new KernelModules(DEP, Set.of());
    List<String> order = km.loadOrder(List.of("9p", "virtio_console"));
    assertEquals(5, order.size());
    assertTrue(
        order.indexOf("kernel/fs/netfs/netfs.ko.xz")
            < order.indexOf("kernel/fs/fscache/fscache.ko.xz"));
    assertTrue(
        order.indexOf("kernel/fs/fscache/fscache.ko.xz") < order.indexOf("kernel/fs/9p/9p.ko.xz"));
    assertEquals(
        "kernel/drivers/char/virtio-console.ko", order.get(4), "dash and underscore names match");
  }

  @Test
  void builtinSkippedUnknownRefused() {
    KernelModules km = new KernelModules(DEP, Set.of("virtio_pci"));
    assertEquals(List.of(), km.loadOrder(List.of("virtio_pci")));
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> km.loadOrder(List.of("nope")));
    assertTrue(e.getMessage().contains("nope"));
  }

  @Test
  void cycleIsReported() {
    KernelModules km = new KernelModules("a.ko: b.ko\nb.ko: a.ko\n", Set.of());
    assertThrows(IllegalArgumentException.class, () -> km.loadOrder(List.of("a")));
  }

  @Test
  void anyAcyclicGraphLoadsEveryModuleAfterItsDependencies() {
    qt().forAll(integers().between(1, 40), longs().all())
        .checkAssert(
            (n, seed) -> {
              Random r = new Random(seed);
              StringBuilder dep = new StringBuilder();
              List<List<Integer>> deps = new ArrayList<>();
              for (int i = 0; i < n; i++) {
                List<Integer> d = new ArrayList<>();
                StringBuilder line = new StringBuilder("m" + i + ".ko:");
                for (int j = 0; j < i; j++) {
                  if (r.nextInt(4) == 0) { // edges only to lower numbers: acyclic
                    d.add(j);
                    line.append(" m").append(j).append(".ko");
                  }
                }
                deps.add(d);
                dep.append(line).append('\n');
              }
              List<String> order =
                  new KernelModules(dep.toString(), Set.of()).loadOrder(List.of("m" + (n - 1)));
              for (int i = 0; i < order.size(); i++) {
                int m = Integer.parseInt(order.get(i).substring(1, order.get(i).indexOf('.')));
                for (int d : deps.get(m)) {
                  int at = order.indexOf("m" + d + ".ko");
                  if (at < 0 || at > i) {
                    throw new AssertionError("m" + d + " not loaded before m" + m + ": " + order);
                  }
                }
              }
              if (order.size() != new java.util.HashSet<>(order).size()) {
                throw new AssertionError("duplicates in " + order);
              }
            });
  }
}
