package dev.agentvm.core.internal;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.internal.LogText;
import dev.agentvm.internal.ProcessOwners;
import dev.agentvm.internal.Setting;
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
 */
public final class OwnerWatchdog {
  private static final Logger LOG = LoggerFactory.getLogger(OwnerWatchdog.class);
  private static final Set<String> STARTED = ConcurrentHashMap.newKeySet();

  /** Held for the life of this JVM: the watchdogs' standard input (closing it would wake them). */
  private static final List<Process> WATCHDOGS = new ArrayList<>();

  private OwnerWatchdog() {}

  /** Starts the watchdog of this JVM for {@code uri}, once; a failure is logged, never thrown. */
  public static void ensureStarted(String uri) {
    if (Setting.WATCHDOG.isOff() || Setting.REAP.isOff() || !STARTED.add(uri)) {
      return;
    }
    List<String> cmd = command(uri);
    try {
      Process p =
          new ProcessBuilder(cmd)
              .redirectOutput(ProcessBuilder.Redirect.DISCARD)
              .redirectError(ProcessBuilder.Redirect.DISCARD)
              .start();
      synchronized (WATCHDOGS) {
        WATCHDOGS.add(p);
      }
      LOG.debug("watchdog {} started for {}", p.pid(), LogText.clean(uri));
    } catch (IOException e) {
      LOG.warn(
          "no watchdog for {} ({}): what this JVM leaves at a crash is reaped only when another"
              + " process opens a connection",
          LogText.clean(uri),
          LogText.clean(e.getMessage()));
    }
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
    cmd.addAll(
        List.of(
            "-cp",
            System.getProperty("java.class.path"),
            OwnerWatchdog.class.getName(),
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
