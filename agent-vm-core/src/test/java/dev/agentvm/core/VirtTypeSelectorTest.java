package dev.agentvm.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.DomainLifecycleListener;
import dev.agentvm.core.spi.HypervisorBackend;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
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
  private static final class FakeBackend implements HypervisorBackend {
    final Set<String> types;
    final AtomicInteger probes = new AtomicInteger();

    FakeBackend(Set<String> types) {
      this.types = types;
    }

    @Override
    public String uri() {
      return "fake:///" + System.identityHashCode(this);
    }

    @Override
    public Set<String> advertisedDomainTypes() {
      return types;
    }

    @Override
    public String versionFingerprint() {
      return "fake " + System.identityHashCode(this);
    }

    @Override
    public DomainHandle define(String xml) {
      throw new UnsupportedOperationException("fake backend defines nothing");
    }

    @Override
    public DomainHandle createTransient(String xml) {
      probes.incrementAndGet();
      throw new HypervisorException("fake: no KVM here", null);
    }

    @Override
    public Optional<DomainHandle> lookup(String name) {
      return Optional.empty();
    }

    @Override
    public DomainHandle restore(Path file, java.util.function.UnaryOperator<String> edit) {
      throw new UnsupportedOperationException("fake backend restores nothing");
    }

    @Override
    public List<String> networkNames() {
      return List.of();
    }

    @Override
    public Optional<String> networkXml(String name) {
      return Optional.empty();
    }

    @Override
    public void defineNetwork(String xml) {
      throw new UnsupportedOperationException("fake backend has no networks");
    }

    @Override
    public boolean isNetworkActive(String name) {
      return false;
    }

    @Override
    public void startNetwork(String name) {
      throw new UnsupportedOperationException("fake backend has no networks");
    }

    @Override
    public void stopNetwork(String name) {
      throw new UnsupportedOperationException("fake backend has no networks");
    }

    @Override
    public void undefineNetwork(String name) {
      throw new UnsupportedOperationException("fake backend has no networks");
    }

    @Override
    public void updateDhcpHost(String network, boolean add, String hostXml) {
      throw new UnsupportedOperationException("fake backend has no networks");
    }

    @Override
    public List<String> filterNames() {
      return List.of();
    }

    @Override
    public Optional<String> filterXml(String name) {
      return Optional.empty();
    }

    @Override
    public void defineFilter(String xml) {
      throw new UnsupportedOperationException("fake backend has no filters");
    }

    @Override
    public void undefineFilter(String name) {
      throw new UnsupportedOperationException("fake backend has no filters");
    }

    @Override
    public String savedImageXml(Path file) {
      throw new UnsupportedOperationException("fake backend saves nothing");
    }

    @Override
    public List<String> domainNames() {
      return List.of();
    }

    @Override
    public void addLifecycleListener(DomainLifecycleListener listener) {}

    @Override
    public void removeLifecycleListener(DomainLifecycleListener listener) {}

    @Override
    public boolean isAlive() {
      return true;
    }

    @Override
    public void close() {}
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
