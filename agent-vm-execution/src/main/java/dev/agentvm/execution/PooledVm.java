package dev.agentvm.execution;

import dev.agentvm.core.VM;
import dev.agentvm.storage.FilesystemShare;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * A VM ready for work, owned by a {@link VMPool}: running, its agent answering, its workspace
 * shares mounted at {@code /workspace}.
 *
 * @param name the VM's name
 * @param vm the VM ({@code null} only for fake factories in unit tests)
 * @param workspace its workspace ({@code null} only for fake factories)
 * @param kind how it was made, e.g. {@code restore} or {@code cold}
 * @param createdAtNanos {@link System#nanoTime()} (or the pool's clock) when it became ready
 */
public record PooledVm(
    String name,
    @Nullable VM vm,
    @Nullable FilesystemShare workspace,
    String kind,
    long createdAtNanos) {
  public PooledVm {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(kind, "kind");
  }

  @Override
  public boolean equals(Object o) {
    return this == o; // identity: two VMs may never be the same pool member
  }

  @Override
  public int hashCode() {
    return System.identityHashCode(this);
  }
}
