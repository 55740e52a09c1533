package dev.agentvm.execution.sandbox;

import dev.agentvm.network.egress.EgressPolicy;
import dev.agentvm.network.egress.EgressSecret;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.UUID;
import org.jspecify.annotations.Nullable;

/**
 * A sandbox's durable record, {@code sandbox.properties} in its directory: everything another
 * process needs to find, resume and reap it. Written to a temporary file and renamed, so a reader
 * sees the old or the new record, never half of one. Not thread-safe: its sandbox guards it.
 */
final class SandboxRecord {
  static final String FILE = "sandbox.properties";

  String id = "";
  UUID uuid = new UUID(0, 0);
  UUID genid = new UUID(0, 0);
  SandboxState state = SandboxState.RUNNING;
  Instant created = Instant.EPOCH;
  String owner = "";
  @Nullable Instant retainUntil;
  String virtType = "";
  int vcpus;
  int memoryMiB;
  String kernel = "";
  String initrd = "";
  String cmdline = "";
  @Nullable String packageDisk;
  String diskTarget = "";

  /** The caller's disk attached after the workspace ({@link SandboxSpec.AttachedDisk}), if any. */
  @Nullable String attachedDisk;

  @Nullable String attachedMount;
  Duration commandTimeout = Duration.ZERO;
  Duration idleTimeout = Duration.ZERO;
  Duration lease = Duration.ZERO;
  SandboxSpec.LeaseEnd onLeaseEnd = SandboxSpec.LeaseEnd.PAUSE;
  Duration pausedRetention = Duration.ZERO;
  Duration agentDeadline = Duration.ZERO;
  Map<String, String> labels = new LinkedHashMap<>();

  /** The egress policy, or null for none. */
  @Nullable EgressPolicy egress;

  /** Kept running for {@link Sandboxes#keepReady}, not handed out yet (not listed). */
  boolean ready;

  /** The workspace disk's read-only layers below its top overlay, top first. */
  List<String> chain = new ArrayList<>();

  /** Checkpoint name to its layer chain (top first), oldest checkpoint first. */
  Map<String, List<String>> checkpoints = new LinkedHashMap<>();

  /**
   * On a remote host: the name of the workspace disk's top overlay in the host's pool (without
   * {@code .qcow2}); null here, where it is {@code disk.qcow2} in the sandbox's directory.
   */
  @Nullable String top;

  /** The workspace disk's size (a remote host's overlays are made with it). */
  long workspaceBytes;

  /**
   * Takes {@code spec}'s per-sandbox settings: labels, timeouts, lease and retention (not the
   * machine's shape, which a running VM cannot change).
   */
  void applySettings(SandboxSpec spec) {
    labels = new LinkedHashMap<>(spec.labels());
    commandTimeout = spec.commandTimeout();
    idleTimeout = spec.idleTimeout();
    lease = spec.lease();
    onLeaseEnd = spec.onLeaseEnd();
    pausedRetention = spec.pausedRetention();
    agentDeadline = spec.agentDeadline();
    egress = spec.egress();
  }

  /** Whether the caller's disk is attached: no pause, checkpoint or fork; a graceful close. */
  boolean hasAttachedDisk() {
    return attachedDisk != null;
  }

  SandboxInfo info() {
    return new SandboxInfo(
        id,
        state,
        labels,
        created,
        Optional.ofNullable(retainUntil),
        owner,
        List.copyOf(checkpoints.keySet()));
  }

  /** Every layer this sandbox still needs (its own chain and its checkpoints'). */
  List<String> layers() {
    List<String> all = new ArrayList<>(chain);
    checkpoints.values().forEach(all::addAll);
    if (top != null) {
      all.add(top);
    }
    return all;
  }

  SandboxRecord copy() {
    Properties p = toProperties();
    SandboxRecord r = new SandboxRecord();
    r.fill(p);
    r.egress = egress; // the copy keeps the secrets' values, which no record on disk holds
    return r;
  }

  void save(Path dir) throws IOException {
    Path tmp = dir.resolve(FILE + ".tmp");
    try (OutputStream out = Files.newOutputStream(tmp)) {
      toProperties().store(out, "agent-vm sandbox");
    }
    Files.move(tmp, dir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE);
  }

  static SandboxRecord load(Path dir) throws IOException {
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(dir.resolve(FILE))) {
      p.load(in);
    }
    SandboxRecord r = new SandboxRecord();
    try {
      r.fill(p);
    } catch (RuntimeException e) {
      throw new IOException("unreadable sandbox record in " + dir + ": " + e, e);
    }
    return r;
  }

  private Properties toProperties() {
    Properties p = new Properties();
    p.setProperty("id", id);
    p.setProperty("uuid", uuid.toString());
    p.setProperty("genid", genid.toString());
    p.setProperty("state", state.name());
    p.setProperty("created", Long.toString(created.toEpochMilli()));
    p.setProperty("owner", owner);
    if (retainUntil != null) {
      p.setProperty("retainUntil", Long.toString(retainUntil.toEpochMilli()));
    }
    p.setProperty("virtType", virtType);
    p.setProperty("vcpus", Integer.toString(vcpus));
    p.setProperty("memoryMiB", Integer.toString(memoryMiB));
    p.setProperty("kernel", kernel);
    p.setProperty("initrd", initrd);
    p.setProperty("cmdline", cmdline);
    if (packageDisk != null) {
      p.setProperty("packageDisk", packageDisk);
    }
    p.setProperty("diskTarget", diskTarget);
    if (attachedDisk != null && attachedMount != null) {
      p.setProperty("attachedDisk", attachedDisk);
      p.setProperty("attachedMount", attachedMount);
    }
    p.setProperty("commandTimeout", commandTimeout.toString());
    p.setProperty("idleTimeout", idleTimeout.toString());
    p.setProperty("lease", lease.toString());
    p.setProperty("onLeaseEnd", onLeaseEnd.name());
    p.setProperty("pausedRetention", pausedRetention.toString());
    p.setProperty("agentDeadline", agentDeadline.toString());
    labels.forEach((k, v) -> p.setProperty("label." + k, v));
    EgressPolicy e = egress;
    if (e != null) {
      p.setProperty("egress.domains", String.join(",", e.domains()));
      p.setProperty(
          "egress.ports", String.join(",", e.ports().stream().map(String::valueOf).toList()));
      p.setProperty("egress.blocks", String.join(",", e.blocks()));
      p.setProperty(
          "egress.rawTunnelPorts",
          String.join(",", e.rawTunnelPorts().stream().sorted().map(String::valueOf).toList()));
      // a secret's name, domains and header; never its value
      p.setProperty(
          "egress.secrets",
          String.join(",", e.secrets().stream().map(EgressSecret::name).toList()));
      for (EgressSecret s : e.secrets()) {
        String k = "egress.secret." + s.name() + ".";
        p.setProperty(k + "domains", String.join(",", s.domains()));
        s.headerName().ifPresent(h -> p.setProperty(k + "header", h));
        s.headerTemplate().ifPresent(t -> p.setProperty(k + "template", t));
        p.setProperty(k + "inHeaders", String.join(",", s.inHeaders()));
      }
    }
    if (ready) {
      p.setProperty("ready", "true");
    }
    p.setProperty("chain", String.join(",", chain));
    if (top != null) {
      p.setProperty("top", top);
    }
    p.setProperty("workspaceBytes", Long.toString(workspaceBytes));
    p.setProperty("checkpoints", String.join(",", checkpoints.keySet()));
    checkpoints.forEach((n, c) -> p.setProperty("checkpoint." + n, String.join(",", c)));
    return p;
  }

  private void fill(Properties p) {
    id = req(p, "id");
    uuid = UUID.fromString(req(p, "uuid"));
    genid = UUID.fromString(req(p, "genid"));
    state = SandboxState.valueOf(req(p, "state"));
    created = Instant.ofEpochMilli(Long.parseLong(req(p, "created")));
    owner = p.getProperty("owner", "");
    String r = p.getProperty("retainUntil");
    retainUntil = r == null ? null : Instant.ofEpochMilli(Long.parseLong(r));
    virtType = req(p, "virtType");
    vcpus = Integer.parseInt(req(p, "vcpus"));
    memoryMiB = Integer.parseInt(req(p, "memoryMiB"));
    kernel = req(p, "kernel");
    initrd = req(p, "initrd");
    cmdline = req(p, "cmdline");
    packageDisk = p.getProperty("packageDisk");
    diskTarget = req(p, "diskTarget");
    attachedDisk = p.getProperty("attachedDisk");
    attachedMount = attachedDisk == null ? null : req(p, "attachedMount");
    commandTimeout = Duration.parse(req(p, "commandTimeout"));
    idleTimeout = Duration.parse(req(p, "idleTimeout"));
    lease = Duration.parse(req(p, "lease"));
    onLeaseEnd = SandboxSpec.LeaseEnd.valueOf(req(p, "onLeaseEnd"));
    pausedRetention = Duration.parse(req(p, "pausedRetention"));
    agentDeadline = Duration.parse(req(p, "agentDeadline"));
    ready = Boolean.parseBoolean(p.getProperty("ready", "false"));
    String domains = p.getProperty("egress.domains");
    if (domains == null) {
      egress = null;
    } else {
      EgressPolicy.Builder b = EgressPolicy.builder();
      split(domains).forEach(b::allowDomain);
      b.ports(split(req(p, "egress.ports")).stream().mapToInt(Integer::parseInt).toArray());
      split(req(p, "egress.blocks")).forEach(b::allowBlock);
      b.rawTunnelPorts(
          split(p.getProperty("egress.rawTunnelPorts", "")).stream()
              .mapToInt(Integer::parseInt)
              .toArray());
      for (String name : split(p.getProperty("egress.secrets", ""))) {
        String k = "egress.secret." + name + ".";
        b.secret(
            EgressSecret.withoutValue(
                name,
                split(req(p, k + "domains")),
                p.getProperty(k + "header"),
                p.getProperty(k + "template"),
                split(p.getProperty(k + "inHeaders", ""))));
      }
      egress = b.build();
    }
    labels = new LinkedHashMap<>();
    for (String k : p.stringPropertyNames()) {
      if (k.startsWith("label.")) {
        labels.put(k.substring("label.".length()), p.getProperty(k));
      }
    }
    chain = split(p.getProperty("chain", ""));
    top = p.getProperty("top");
    workspaceBytes = Long.parseLong(p.getProperty("workspaceBytes", "0"));
    checkpoints = new LinkedHashMap<>();
    for (String n : split(p.getProperty("checkpoints", ""))) {
      checkpoints.put(n, split(req(p, "checkpoint." + n)));
    }
  }

  private static String req(Properties p, String key) {
    String v = p.getProperty(key);
    if (v == null) {
      throw new IllegalArgumentException("missing " + key);
    }
    return v;
  }

  private static List<String> split(String s) {
    return s.isEmpty() ? new ArrayList<>() : new ArrayList<>(Arrays.asList(s.split(",", -1)));
  }
}
