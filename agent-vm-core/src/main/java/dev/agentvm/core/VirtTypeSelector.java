package dev.agentvm.core;

import dev.agentvm.core.spi.DomainHandle;
import dev.agentvm.core.spi.HypervisorBackend;
import dev.agentvm.internal.AgentVmPaths;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.internal.Setting;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decides between KVM and TCG for {@link VirtType#AUTO}.
 *
 * <p>libvirt's capabilities are not enough: some hosts (a paravirtual {@code kvm_pvm} module, for
 * one) advertise {@code kvm} although a guest kernel started under it hangs before printing a line.
 * So where KVM is advertised, a probe boots the guest kernel under KVM for at most {@link
 * #PROBE_TIMEOUT} and uses KVM only if the kernel printed its banner. The answer is remembered per
 * host fingerprint (host, kernel, libvirt and QEMU versions) in {@code <state
 * root>/virt-type.properties}, so the probe runs once per host.
 *
 * <p>Order: {@code $AGENTVM_VIRT_TYPE} if set, else the configured type if not AUTO, else the
 * above.
 */
public final class VirtTypeSelector {
  private static final Logger LOG = LoggerFactory.getLogger(VirtTypeSelector.class);
  public static final Duration PROBE_TIMEOUT = Duration.ofSeconds(15);
  private static final Map<String, VirtType> DECIDED = new ConcurrentHashMap<>();

  private final HypervisorBackend backend;
  private final Path cache;

  VirtTypeSelector(HypervisorBackend backend) {
    this(backend, AgentVmPaths.stateRoot().resolve("virt-type.properties"));
  }

  VirtTypeSelector(HypervisorBackend backend, Path cache) {
    this.backend = backend;
    this.cache = cache;
  }

  VirtType select(VirtType configured, BootSource boot) {
    // an operator's override for this host wins over the template's choice
    String env = Setting.VIRT_TYPE.value().orElse(null);
    if (env != null) {
      VirtType fromEnv = VirtType.parse(env);
      if (fromEnv != VirtType.AUTO) {
        return fromEnv;
      }
    } else if (configured != VirtType.AUTO) {
      return configured;
    }
    if (!backend.advertisedDomainTypes().contains("kvm")) {
      return DECIDED.computeIfAbsent(
          backend.uri() + " no-kvm",
          k -> {
            LOG.warn(
                "KVM is not available at {}: guests run under TCG (software emulation, slower)",
                backend.uri());
            return VirtType.QEMU;
          });
    }
    String fingerprint = backend.uri() + " " + backend.versionFingerprint();
    return DECIDED.computeIfAbsent(fingerprint, fp -> decide(fp, boot));
  }

  private VirtType decide(String fingerprint, BootSource boot) {
    Properties p = new Properties();
    String key = Integer.toHexString(fingerprint.hashCode()) + "." + fingerprint.length();
    if (Files.isRegularFile(cache)) {
      try (InputStream in = Files.newInputStream(cache)) {
        p.load(in);
      } catch (IOException e) {
        LOG.debug("ignoring unreadable {}: {}", cache, e.getMessage());
      }
      String known = p.getProperty(key);
      if (known != null && fingerprint.equals(p.getProperty(key + ".host"))) {
        VirtType t = VirtType.valueOf(known);
        logDecision(t, "remembered in " + cache);
        return t;
      }
    }
    long t0 = System.nanoTime();
    boolean kvmBoots = probeKvm(boot);
    VirtType t = kvmBoots ? VirtType.KVM : VirtType.QEMU;
    logDecision(t, String.format("probe boot took %.1f s", (System.nanoTime() - t0) / 1e9));
    p.setProperty(key, t.name());
    p.setProperty(key + ".host", fingerprint);
    p.setProperty(key + ".probedAt", Instant.now().toString());
    try {
      // a relative cache file has no parent: its directory is the working directory
      Path dir = cache.toAbsolutePath().getParent();
      if (dir == null) {
        throw new IOException("cache file " + cache + " has no directory");
      }
      Files.createDirectories(dir);
      Path tmp = Files.createTempFile(dir, ".virt-type", ".tmp");
      try (OutputStream out = Files.newOutputStream(tmp)) {
        p.store(out, "agent-vm: KVM probe results per host; delete to probe again");
      }
      Files.move(tmp, cache, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      LOG.warn("cannot remember the KVM probe result in {}: {}", cache, e.getMessage());
    }
    return t;
  }

  private static void logDecision(VirtType t, String how) {
    if (t == VirtType.KVM) {
      LOG.info("KVM boots guests on this host: using KVM ({})", how);
    } else {
      LOG.warn(
          "KVM is advertised but a guest kernel printed nothing under it within {} s: using TCG "
              + "(software emulation, slower) ({}). Set {}=kvm to force KVM.",
          PROBE_TIMEOUT.toSeconds(),
          how,
          VirtType.ENV);
    }
  }

  private static final int PROBE_CONSOLE_BYTES = 1 << 20;

  /** Boots the kernel under KVM with a transient domain and looks for its banner on the console. */
  private boolean probeKvm(BootSource boot) {
    String name = "agentvm-probe-" + UUID.randomUUID().toString().substring(0, 8);
    Path dir = AgentVmPaths.runDir(name);
    BootSource probeBoot = boot.withExtraCmdline("loglevel=7 agentvm.mode=bare");
    VMTemplate t =
        VMTemplate.builder(name).boot(probeBoot).runDir(dir).owner(ProcessOwners.CURRENT).build();
    DomainHandle d = null;
    try {
      Files.createDirectories(dir);
      LOG.debug("probing KVM with {}", name);
      d = backend.createTransient(t, VirtType.KVM);
      long end = System.nanoTime() + PROBE_TIMEOUT.toNanos();
      while (System.nanoTime() < end) {
        // through the domain: the log is on the VM's host, which may be another machine
        java.util.Optional<byte[]> tail = d.consoleTail(PROBE_CONSOLE_BYTES);
        if (tail.isPresent()) {
          String console = new String(tail.get(), java.nio.charset.StandardCharsets.ISO_8859_1);
          if (console.contains("Linux version") || console.contains("agentvm-init")) {
            return true;
          }
        }
        Thread.sleep(backend.isLocal() ? 100 : 1000); // a remote read is a download
      }
      return false;
    } catch (IOException | RuntimeException e) {
      LOG.debug("KVM probe failed: {}", e.toString());
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    } finally {
      if (d != null) {
        try {
          d.destroy();
        } catch (RuntimeException e) {
          LOG.debug("probe domain {} already gone: {}", name, e.getMessage());
        }
      }
      try {
        VM.deleteTree(dir);
      } catch (IOException e) {
        LOG.warn("cannot remove probe directory {}: {}", dir, e.getMessage());
      }
    }
  }
}
