package dev.agentvm.junit;

import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A test class whose {@link AgentVm} fields are filled with real VMs.
 *
 * <pre>{@code
 * @AgentVmTest
 * class MyAgentTest {
 *   @AgentVm static AgentExecutor executor;     // shared by the class's tests
 *   @AgentVm VM vm;                             // a fresh VM for each test
 *
 *   @Test void runs() {
 *     assertEquals("hi\n", executor.execute(ExecutionRequest.script("echo hi").build()).stdoutText());
 *   }
 * }
 * }</pre>
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Inherited
@ExtendWith(AgentVmExtension.class)
public @interface AgentVmTest {
  /**
   * Skip (rather than fail) the class when libvirt cannot be reached. Off by default: a test that
   * claims to run in a VM should fail loudly where it cannot.
   */
  boolean disabledWithoutLibvirt() default false;
}
