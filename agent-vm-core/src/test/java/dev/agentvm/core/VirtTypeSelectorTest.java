package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.HypervisorBackend;
import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Selection logic with a fake backend (no libvirt). The probe itself boots a real kernel and is
 * exercised by every integration test that uses {@link VirtType#AUTO}.
 */
class VirtTypeSelectorTest {
  @TempDir Path state;

  private VirtTypeSelector selector(HypervisorBackend b) {
    return new VirtTypeSelector(b, state.resolve("virt-type.properties"));
  }

  private static final BootSource BOOT = new BootSource(Path.of("/k"), Path.of("/i"), "");

  /** Advertises the given types; counts probe attempts (createTransient) and refuses them. */
  private static final class FakeBackend extends FakeHypervisor {
    final Set<String> types;
    final AtomicInteger probes = new AtomicInteger();

    FakeBackend(Set<String> types) {
      this.types = types;
    }

    @Override
    public Set<String> advertisedDomainTypes() {
      return types;
    }

    @Override
    public DomainHandle createTransient(VMTemplate template, VirtType type) {
      probes.incrementAndGet();
      throw new HypervisorException("fake: no KVM here", null);
    }
  }

  @Test
  void explicitTypeWinsOverEverything() {
    Assumptions.assumeTrue(System.getenv(VirtType.ENV) == null, "env override set");
    FakeBackend b = new FakeBackend(Set.of("kvm", "qemu"));
    assertEquals(VirtType.KVM, selector(b).select(VirtType.KVM, BOOT));
    assertEquals(VirtType.QEMU, selector(b).select(VirtType.QEMU, BOOT));
    assertEquals(0, b.probes.get());
  }

  @Test
  void noKvmAdvertisedMeansTcgWithoutProbing() {
    Assumptions.assumeTrue(System.getenv(VirtType.ENV) == null, "env override set");
    FakeBackend b = new FakeBackend(Set.of("qemu"));
    assertEquals(VirtType.QEMU, selector(b).select(VirtType.AUTO, BOOT));
    assertEquals(0, b.probes.get());
  }

  @Test
  void kvmThatCannotBootFallsBackToTcgAndIsProbedOncePerHost() throws java.io.IOException {
    Assumptions.assumeTrue(System.getenv(VirtType.ENV) == null, "env override set");
    FakeBackend b = new FakeBackend(Set.of("kvm", "qemu"));
    VirtTypeSelector s = selector(b);
    assertEquals(VirtType.QEMU, s.select(VirtType.AUTO, BOOT));
    assertEquals(VirtType.QEMU, s.select(VirtType.AUTO, BOOT));
    assertEquals(VirtType.QEMU, selector(b).select(VirtType.AUTO, BOOT));
    assertEquals(1, b.probes.get());
    // remembered on disk for the next JVM, in the state file we gave it
    assertEquals(
        true,
        java.nio.file.Files.readString(state.resolve("virt-type.properties")).contains("=QEMU"));
  }
}
