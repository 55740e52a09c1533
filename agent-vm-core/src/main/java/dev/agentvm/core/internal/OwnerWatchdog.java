package dev.agentvm.core.internal;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.internal.Setting;
import edu.umd.cs.findbugs.annotations.SuppressFBWarnings;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A small JVM that outlives its parent to reap what the parent leaves, within seconds of its death
 * and whether or not another process ever opens a connection (the way Testcontainers' Ryuk does).
 *
 * <p>The parent starts it once per libvirt URI, in a session of its own (so that a Ctrl-C to the
 * parent's terminal does not take it along), with a pipe on its standard input that only the parent
 * holds. The pipe closes when the parent ends, however it ends; the watchdog then waits for the
 * parent to be gone and runs one ordinary reaping pass ({@link dev.agentvm.core.Reaper}: graceful,
 * then forced; the storage and network reapers too), which touches only what dead owners left.
 * After a clean exit that pass finds nothing. Off with {@code agentvm.watchdog=off}, or when
 * reaping is off.
 *
 * <p>Its class path is the parent's. Inside a Spring Boot executable jar, whose libraries are jars
 * nested in the application's jar, it is started through Boot's own {@code PropertiesLauncher}
 * instead, which reads those. It says {@value #READY} on its standard output once it runs; one that
 * ends before that is reported in a WARN (with its exit code), never silently missing.
 */
public final class OwnerWatchdog {
  private static final Logger LOG = LoggerFactory.getLogger(OwnerWatchdog.class);
  private static final Set<String> STARTED = ConcurrentHashMap.newKeySet();

  /** Held for the life of this JVM: the watchdogs' standard input (closing it would wake them). */
  private static final List<Process> WATCHDOGS = new ArrayList<>();

  /** The line a watchdog prints once it runs. */
  static final String READY = "agentvm-watchdog ready";

  private OwnerWatchdog() {}

  /** Starts the watchdog of this JVM for {@code uri}, once; a failure is logged, never thrown. */
  public static void ensureStarted(String uri) {
    if (Setting.WATCHDOG.isOff() || Setting.REAP.isOff() || !STARTED.add(uri)) {
      return;
    }
    List<String> cmd = command(uri);
    try {
      Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
      synchronized (WATCHDOGS) {
        WATCHDOGS.add(p);
      }
      Thread t = new Thread(() -> follow(p, uri, cmd), "agentvm-watchdog-" + p.pid());
      t.setDaemon(true);
      t.start();
      LOG.debug("watchdog {} started for {}", p.pid(), LogText.clean(uri));
    } catch (IOException e) {
      LOG.warn(
          "no watchdog for {} ({}): what this JVM leaves at a crash is reaped only when another"
              + " process opens a connection",
          LogText.clean(uri),
          LogText.clean(e.getMessage()));
    }
  }

  /**
   * Waits for the watchdog's {@link #READY} and then drains its output for the life of this JVM; a
   * watchdog that ends before it was ready is reported.
   */
  @SuppressFBWarnings(
      value = "CRLF_INJECTION_LOGS",
      justification = "the URI is cleaned with LogText; the rest are numbers")
  static boolean followStart(Process p, String uri, List<String> cmd) {
    boolean ready = false;
    try (java.io.BufferedReader r =
        new java.io.BufferedReader(
            new java.io.InputStreamReader(
                p.getInputStream(), java.nio.charset.StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        if (!ready && line.equals(READY)) {
          ready = true;
          LOG.debug("watchdog {} for {} is ready", p.pid(), LogText.clean(uri));
        }
      }
    } catch (IOException e) {
      // this JVM is ending, or the watchdog closed its output: nothing to report
    }
    if (!ready) {
      try {
        int code = p.waitFor();
        LOG.warn(
            "the watchdog for {} ended at its start (exit code {}): what this JVM leaves at a crash"
                + " is reaped only when another process opens a connection. Its command: {}",
            LogText.clean(uri),
            code,
            LogText.clean(String.join(" ", cmd)));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    return ready;
  }

  private static void follow(Process p, String uri, List<String> cmd) {
    followStart(p, uri, cmd);
  }

  /**
   * The Spring Boot launcher that can start another main class from the application's jar, if this
   * class was loaded from a jar nested in it (a plain class path needs none).
   */
  static @org.jspecify.annotations.Nullable String springBootLauncher() {
    java.security.CodeSource src = OwnerWatchdog.class.getProtectionDomain().getCodeSource();
    if (src == null
        || src.getLocation() == null
        || "file".equals(src.getLocation().getProtocol())) {
      return null;
    }
    ClassLoader system = ClassLoader.getSystemClassLoader();
    for (String launcher :
        List.of(
            "org.springframework.boot.loader.launch.PropertiesLauncher", // Boot 3.2 and later
            "org.springframework.boot.loader.PropertiesLauncher")) { // Boot 2 to 3.1
      if (system.getResource(launcher.replace('.', '/') + ".class") != null) {
        return launcher;
      }
    }
    return null;
  }

  static List<String> command(String uri) {
    List<String> cmd = new ArrayList<>();
    Path setsid = Path.of("/usr", "bin", "setsid"); // util-linux, on every Debian
    if (Files.isExecutable(setsid)) {
      cmd.add(setsid.toString()); // a session of its own: the terminal's signals are not for it
    }
    cmd.add(javaExecutable());
    cmd.addAll(
        List.of(
            "-Xmx48m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xss512k",
            "-D" + Setting.WATCHDOG.property() + "=off",
            "-D" + Setting.LIBVIRT_URI.property() + "=" + uri));
    Setting.STATE_DIR
        .value()
        .ifPresent(v -> cmd.add("-D" + Setting.STATE_DIR.property() + "=" + v));
    String launcher = springBootLauncher();
    if (launcher != null) {
      cmd.add("-Dloader.main=" + OwnerWatchdog.class.getName());
    }
    cmd.addAll(
        List.of(
            "-cp",
            System.getProperty("java.class.path"),
            launcher != null ? launcher : OwnerWatchdog.class.getName(),
            ProcessOwners.CURRENT));
    return cmd;
  }

  private static String javaExecutable() {
    return ProcessHandle.current()
        .info()
        .command()
        .filter(c -> c.endsWith("/java"))
        .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
  }

  /**
   * The watchdog: waits for its standard input to close, then for {@code args[0]} (the parent's
   * owner id) to be gone, then reaps.
   */
  public static void main(String[] args) throws IOException, InterruptedException {
    String parent = args.length > 0 ? args[0] : "";
    System.out.println(READY);
    System.out.flush();
    awaitEndOfInput(System.in);
    for (int i = 0; i < 300 && ProcessOwners.isAlive(parent); i++) {
      Thread.sleep(100); // the pipe closes a moment before the process is reaped
    }
    if (ProcessOwners.isAlive(parent)) {
      return; // it closed our pipe but lives on: nothing of its is an orphan
    }
    // opening a connection reaps (reaping is on, or this watchdog would not run)
    LibvirtConnection.open().close();
    LOG.info("watchdog of {}: reaped", LogText.clean(parent));
  }

  static void awaitEndOfInput(InputStream in) throws IOException {
    byte[] buf = new byte[256];
    while (in.read(buf) >= 0) {
      // the parent never writes; reading only waits for the end
    }
  }
}
