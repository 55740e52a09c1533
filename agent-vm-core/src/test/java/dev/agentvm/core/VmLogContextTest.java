package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.agentvm.core.spi.DomainLifecycleListener;
import dev.agentvm.internal.LogContext;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.MDC;
import org.slf4j.MdcForTests;

/**
 * A VM's calls run with its name in the MDC (seen here by a lifecycle listener, which the fake
 * hypervisor calls on the calling thread), and give the MDC back as it was.
 */
class VmLogContextTest {
  private static final BootSource BOOT = new BootSource(Path.of("/k"), Path.of("/i"), "");

  @TempDir Path tmp;

  @BeforeAll
  static void workingMdc() {
    MdcForTests.install();
  }

  @AfterEach
  void clean() {
    MDC.clear();
  }

  @Test
  void eachCallRunsWithTheVmsNameInTheMdcAndRestoresTheCallersValue() {
    FakeHypervisor hv = new FakeHypervisor();
    List<String> seen = new CopyOnWriteArrayList<>();
    DomainLifecycleListener spy = (name, event) -> seen.add(event + " " + MDC.get(LogContext.VM));
    hv.addLifecycleListener(spy);
    try (LibvirtConnection conn = LibvirtConnection.using(hv)) {
      VMTemplate t =
          VMTemplate.builder("vm-a")
              .boot(BOOT)
              .runDir(tmp.resolve("vm-a"))
              .virtType(VirtType.QEMU)
              .build();
      VM vm = conn.define(t);
      vm.start();
      assertNull(MDC.get(LogContext.VM), "nothing left behind");
      MDC.put(LogContext.VM, "the caller's");
      vm.pause();
      vm.resume();
      assertEquals("the caller's", MDC.get(LogContext.VM), "the caller's value back");
      MDC.remove(LogContext.VM);
      vm.close();
      assertNull(MDC.get(LogContext.VM));
    }
    assertEquals(List.of("STARTED vm-a", "SUSPENDED vm-a", "RESUMED vm-a", "SHUTDOWN vm-a"), seen);
  }
}
