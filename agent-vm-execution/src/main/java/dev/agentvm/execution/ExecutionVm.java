package dev.agentvm.execution;

import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.storage.ExtractedOutput;
import dev.agentvm.storage.OutputLimits;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import org.jspecify.annotations.Nullable;

/**
 * The executor's whole view of the machine one execution runs in: a sandbox ({@link
 * SandboxExecutionVms}), or a fake in the workflow's unit tests. Not API.
 */
interface ExecutionVm {
  /** Its name (the sandbox's id), for logs, audit records and results. */
  String name();

  /** Writes a file into the guest, creating its parent directories. */
  void write(String guestPath, byte[] content) throws IOException;

  /** Copies a host file into the guest, creating its parent directories. */
  void upload(Path source, String guestPath) throws IOException;

  /** Creates a directory and its parents in the guest. */
  void mkdirs(String guestDir) throws IOException;

  /** Starts a command that runs to completion, its output streamed to {@code listener}. */
  Command start(ExecRequest request, OutputListener listener) throws IOException;

  /** What the machine costs the host as the hypervisor measures it; null if it cannot say. */
  dev.agentvm.core.@Nullable VmStats hostStats();

  /** The guest's own report of its memory, load and processes. */
  StatusReport status(Duration deadline) throws IOException;

  /** Copies the guest directory {@code guestDir} to the new host directory {@code dest}. */
  ExtractedOutput extract(String guestDir, Path dest, OutputLimits limits) throws IOException;

  /** Stops the machine and keeps it for inspection; its name stays valid for {@link #close()}. */
  void quarantine();

  /** Removes the machine and everything it owned. */
  void close();

  /** A running command. */
  interface Command {
    /** Its result; exceptionally a {@code VmCrashedException} if the machine died. */
    CompletableFuture<ExecResult> result();

    /** Stops it and its process group. */
    void kill() throws IOException;
  }

  /** How a command is stopped. */
  @FunctionalInterface
  interface Killer {
    void kill() throws IOException;
  }

  /** A command as a result to come and a way to stop it. */
  record RunningCommand(CompletableFuture<ExecResult> result, Killer killer) implements Command {
    @Override
    public void kill() throws IOException {
      killer.kill();
    }
  }

  /** Where machines come from. */
  @FunctionalInterface
  interface Source {
    /** A fresh machine for one execution. */
    ExecutionVm acquire();

    /**
     * Whether a machine must be closed before the execution's result is returned (rather than in
     * the background): one holding something the caller uses next, such as an attached disk.
     */
    default boolean closesBeforeReturning() {
      return false;
    }

    /** What its machines are made from: the anomaly detector's baselines are kept per template. */
    default String template() {
      return "default";
    }
  }
}
