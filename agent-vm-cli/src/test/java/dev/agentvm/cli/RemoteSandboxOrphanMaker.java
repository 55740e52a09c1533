package dev.agentvm.cli;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Run in a child JVM by RemoteCliIT: on the host at {@code args[0]}, with records under {@code
 * args[1]}, makes a running sandbox and a paused one (names starting {@code args[2]}), says {@code
 * READY <running> <paused>}, then waits to be killed.
 */
public final class RemoteSandboxOrphanMaker {
  public static void main(String[] args) throws Exception {
    LibvirtConnection conn = LibvirtConnection.open(args[0]);
    Sandboxes sandboxes = Sandboxes.open(conn, Path.of(args[1]));
    SandboxSpec spec =
        SandboxSpec.defaults().withNamePrefix(args[2]).withCommandTimeout(Duration.ofSeconds(60));
    Sandbox running = sandboxes.create(spec.withLabel("role", "running"));
    Sandbox paused =
        sandboxes.create(spec.withLabel("role", "paused").withPausedRetention(Duration.ofHours(1)));
    paused
        .files()
        .write("/workspace/left.txt", "left by a killed client\n".getBytes(StandardCharsets.UTF_8));
    paused.pause();
    System.out.println("READY " + running.id() + " " + paused.id());
    System.out.flush();
    Thread.sleep(Long.MAX_VALUE);
  }
}
