package dev.agentvm.core;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A second, real libvirt host for tests, on this machine: libvirtd and virtlogd in a network
 * namespace of their own, reached only at the namespace's address over {@code qemu+tcp}, with their
 * own runtime, state and configuration directories, in a mount namespace where this machine's
 * agent-vm state and caches, {@code /tmp}, {@code /work}, {@code /root} and {@code /home} are empty
 * (so nothing reaches that host except through libvirt). See {@code remote-libvirt-host.sh}.
 * Closing it kills everything in the namespace and removes it. Needs root.
 */
public final class RemoteLibvirtHost implements AutoCloseable {
  /** Namespace names start with this ({@link TestVms#PREFIX}), so a crashed run's are known. */
  public static final String PREFIX = TestVms.PREFIX + "rh";

  private final String name;
  private final Path base;
  private final String uri;

  private RemoteLibvirtHost(String name, Path base, String uri) {
    this.name = name;
    this.base = base;
    this.uri = uri;
  }

  /**
   * Starts host number {@code index} (1-250), first removing what a crashed run left of it.
   *
   * @throws IllegalStateException if it did not start
   */
  public static RemoteLibvirtHost start(int index) {
    return start(index, false);
  }

  /**
   * Like {@link #start(int)}; with {@code tls}, the host listens for {@code qemu+tls} only, with a
   * CA and certificates made for it, and {@link #uri()} names the client's certificates ({@code
   * ?pkipath=}, in {@link #clientPki()}).
   */
  public static RemoteLibvirtHost start(int index, boolean tls) {
    String name = PREFIX + index;
    Path base = Path.of("/var/tmp", name);
    String out =
        tls
            ? run("up", name, Integer.toString(index), base.toString(), "tls")
            : run("up", name, Integer.toString(index), base.toString());
    String trimmed = out.strip();
    return new RemoteLibvirtHost(name, base, trimmed.substring(trimmed.lastIndexOf('\n') + 1));
  }

  /** The URI to reach it: {@code qemu+tcp://10.213.<index>.2/system}. */
  public String uri() {
    return uri;
  }

  /**
   * Its network namespace's name, for {@code ip netns exec} (its bridges and firewall live there).
   */
  public String namespace() {
    return name;
  }

  /** The client's certificates and the CA for a TLS host ({@code cacert.pem}, ...). */
  public Path clientPki() {
    return base.resolve("client-pki");
  }

  /**
   * Writes into {@code dir} a client certificate signed by a CA this (TLS) host does not know, and
   * the host's CA: a client that trusts the host and that the host must refuse.
   */
  public void roguePki(Path dir) {
    run("rogue-pki", name, base.toString(), dir.toString());
  }

  /** Kills its libvirtd (the host "goes away"; running QEMU processes stay, as on a real host). */
  public void stopDaemon() {
    run("stop", name, base.toString());
  }

  /** Stops its libvirtd with SIGSTOP: the host hangs (its kernel still accepts connections). */
  public void freezeDaemon() {
    run("freeze", name, base.toString());
  }

  /** SIGCONT for a frozen libvirtd. */
  public void thawDaemon() {
    run("thaw", name, base.toString());
  }

  /** Starts its libvirtd again. */
  public void startDaemon() {
    run("start", name, base.toString());
  }

  /** The number of QEMU processes running in the host's namespace. */
  public int qemuProcesses() {
    int n = 0;
    for (String pid : exec(List.of("ip", "netns", "pids", name)).strip().lines().toList()) {
      try {
        String comm = Files.readString(Path.of("/proc", pid, "comm")).strip();
        if (comm.startsWith("qemu")) {
          n++;
        }
      } catch (IOException e) {
        // gone meanwhile
      }
    }
    return n;
  }

  /** Files in the host's agent-vm storage pool directory, by name. */
  public List<String> poolFiles() {
    Path dir = base.resolve("lib/agent-vm");
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (var s = Files.list(dir)) {
      return s.map(p -> String.valueOf(p.getFileName())).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public void close() {
    run("down", name, base.toString());
  }

  /**
   * Ends a test class's use of a host: reaps the test domains left on it through {@code conn},
   * closes {@code conn}, then takes the host down. Either may be null (a start that failed).
   */
  public static void stop(RemoteLibvirtHost host, LibvirtConnection conn) {
    try {
      if (conn != null) {
        TestVms.reapTestDomains(conn);
        conn.close();
      }
    } finally {
      if (host != null) {
        host.close();
      }
    }
  }

  private static String run(String... args) {
    Path script;
    try (InputStream in = RemoteLibvirtHost.class.getResourceAsStream("remote-libvirt-host.sh")) {
      if (in == null) {
        throw new IllegalStateException("remote-libvirt-host.sh is not on the class path");
      }
      script = Files.createTempFile("remote-libvirt-host", ".sh");
      Files.write(script, in.readAllBytes());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    try {
      List<String> cmd = new ArrayList<>(List.of("bash", script.toString()));
      cmd.addAll(List.of(args));
      return exec(cmd);
    } finally {
      try {
        Files.deleteIfExists(script);
      } catch (IOException e) {
        // a temp file
      }
    }
  }

  private static String exec(List<String> cmd) {
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      p.getOutputStream().close();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IllegalStateException(cmd + " did not finish: " + out);
      }
      if (p.exitValue() != 0) {
        throw new IllegalStateException(cmd + " failed (" + p.exitValue() + "): " + out);
      }
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
