package dev.agentvm.execution;

import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.OutputListener;
import dev.agentvm.execution.sandbox.Sandbox;
import dev.agentvm.execution.sandbox.SandboxCommand;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.protocol.StatusReport;
import dev.agentvm.storage.ExtractedOutput;
import dev.agentvm.storage.OutputLimits;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import org.jspecify.annotations.Nullable;

/** Executions in sandboxes: one new sandbox per execution, closed afterwards. */
final class SandboxExecutionVms implements ExecutionVm.Source {
  private final java.util.function.Function<SandboxSpec, Sandbox> create;
  private final SandboxSpec spec;

  SandboxExecutionVms(Sandboxes sandboxes, SandboxSpec spec) {
    this(sandboxes::create, spec);
  }

  /** Each execution's sandbox made by {@code create} (on a host of a set, say). */
  SandboxExecutionVms(java.util.function.Function<SandboxSpec, Sandbox> create, SandboxSpec spec) {
    this.create = create;
    this.spec = spec;
  }

  @Override
  public ExecutionVm acquire() {
    return new InSandbox(create.apply(spec));
  }

  /** A sandbox with an attached disk: the caller hands the disk on once the result is back. */
  @Override
  public boolean closesBeforeReturning() {
    return spec.attachedDisk() != null;
  }

  /** The machine's shape: image (with its packages), vCPUs, memory and workspace size. */
  @Override
  public String template() {
    var image = spec.image();
    return (image == null ? "micro" : image.directory().getFileName() + "+" + image.packages())
        + "/"
        + spec.resources().vcpus()
        + "cpu/"
        + spec.resources().memoryMiB()
        + "MiB/"
        + spec.workspaceBytes();
  }

  private static final class InSandbox implements ExecutionVm {
    private final Sandbox sb;

    InSandbox(Sandbox sb) {
      this.sb = sb;
    }

    @Override
    public String name() {
      return sb.id();
    }

    @Override
    public void write(String guestPath, byte[] content) throws IOException {
      sb.files().write(guestPath, content);
    }

    @Override
    public void upload(Path source, String guestPath) throws IOException {
      sb.files().upload(source, guestPath, 0644);
    }

    @Override
    public void mkdirs(String guestDir) throws IOException {
      sb.files().mkdirs(guestDir);
    }

    @Override
    public Command start(ExecRequest request, OutputListener listener) throws IOException {
      SandboxCommand c = sb.execAsync(request, listener);
      return new RunningCommand(c.result(), c::kill);
    }

    @Override
    public StatusReport status(Duration deadline) throws IOException {
      return sb.status(deadline);
    }

    @Override
    public dev.agentvm.core.@Nullable VmStats hostStats() {
      try {
        return sb.stats();
      } catch (RuntimeException e) {
        return null; // the VM went (a crash is reported by the command's result)
      }
    }

    @Override
    public ExtractedOutput extract(String guestDir, Path dest, OutputLimits limits)
        throws IOException {
      return sb.files().extract(guestDir, dest, limits);
    }

    @Override
    public void quarantine() {
      sb.pause();
    }

    @Override
    public void close() {
      sb.close();
    }
  }
}
