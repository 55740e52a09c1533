package dev.agentvm.git;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.storage.PersistentSlots;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Child JVM for {@link GitSlotIT}: runs a git task holding slot {@code args[1]} on repository
 * {@code args[2]} whose agent marks the slot, says so on the guest's console, and then waits
 * forever, to be killed with SIGKILL.
 */
public final class SlotHolderMain {
  public static void main(String[] args) throws Exception {
    String prefix = args[0];
    String slot = args[1];
    Path repo = Path.of(args[2]);
    MicroImage image = MicroImageBuilder.create().packages(MicroImage.PYTHON_GIT).build();
    LibvirtConnection conn = LibvirtConnection.open();
    Sandboxes sandboxes = Sandboxes.open(conn);
    SandboxSpec spec = SandboxSpec.defaults().withImage(image).withNamePrefix(prefix + "-");
    GitTaskRunner runner =
        GitTaskRunner.builder(AgentExecutor.builder(sandboxes).sandbox(spec).build())
            .slots(sandboxes, spec, PersistentSlots.atDefaultRoot())
            .build();
    runner.run(
        GitTask.builder(repo, "main")
            .slot(slot, 64L << 20)
            .command(
                "echo written-by-the-killed-task > /slots/"
                    + slot
                    + "/marker; sync; echo slot-marked-"
                    + slot
                    + " > /dev/console; sleep 600")
            .timeout(Duration.ofMinutes(10))
            .build());
  }
}
