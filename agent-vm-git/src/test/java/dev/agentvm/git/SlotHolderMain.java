package dev.agentvm.git;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.AgentExecutor;
import dev.agentvm.execution.ColdBootVmFactory;
import dev.agentvm.execution.GuestImages;
import dev.agentvm.execution.PoolConfig;
import dev.agentvm.execution.VMPool;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.storage.PersistentSlots;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Child JVM for {@link GitSlotIT}: runs a git task holding slot {@code args[1]} on repository
 * {@code args[2]} whose agent marks the slot and then waits forever, to be killed with SIGKILL.
 */
public final class SlotHolderMain {
  public static void main(String[] args) throws Exception {
    String templateName = args[0];
    String slot = args[1];
    Path repo = Path.of(args[2]);
    MicroImage image = MicroImageBuilder.create().packages(MicroImage.PYTHON_GIT).build();
    LibvirtConnection conn = LibvirtConnection.open();
    var template = GuestImages.template(templateName, image).build();
    VMPool unused =
        VMPool.start(
            new ColdBootVmFactory(
                conn,
                template,
                dev.agentvm.storage.FilesystemShare.defaultRoot(),
                Duration.ofMinutes(1),
                Duration.ZERO),
            PoolConfig.DEFAULT.withSize(0, 1));
    GitTaskRunner runner =
        GitTaskRunner.builder(AgentExecutor.builder(unused, Duration.ofMinutes(1)).build())
            .slots(conn, template, PersistentSlots.atDefaultRoot())
            .build();
    runner.run(
        GitTask.builder(repo, "main")
            .slot(slot, 64L << 20)
            .command(
                "echo written-by-the-killed-task > /slots/"
                    + slot
                    + "/marker; sync; touch /workspace/output/slot-marked; sleep 600")
            .timeout(Duration.ofMinutes(10))
            .build());
  }
}
