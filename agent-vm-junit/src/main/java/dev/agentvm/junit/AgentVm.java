package dev.agentvm.junit;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a field the {@link AgentVmExtension} fills: a {@link dev.agentvm.core.VM} (booted, its
 * agent answering) or an {@link dev.agentvm.execution.AgentExecutor} (running each execution in a
 * sandbox of its own, some kept ready). A static field lives for the test class, an instance field
 * for one test; either is removed afterwards, also when the test fails.
 */
@Target(ElementType.FIELD)
@Retention(RetentionPolicy.RUNTIME)
public @interface AgentVm {
  /** Guest memory. */
  int memoryMiB() default 256;

  /** Virtual CPUs. */
  int vcpus() default 1;

  /** For an executor: sandboxes kept running and ready ({@code Sandboxes.keepReady}). */
  int poolSize() default 1;

  /**
   * Debian packages for the guest, e.g. {@code {"python3", "git"}}: an image flavour with them on a
   * package disk (see {@link dev.agentvm.image.MicroImageBuilder#packages}). Empty: the plain micro
   * image (busybox only).
   */
  String[] packages() default {};
}
