package dev.agentvm.storage;

import dev.agentvm.core.VM;
import dev.agentvm.core.agent.AgentClient;
import dev.agentvm.core.agent.ExecRequest;
import dev.agentvm.core.agent.ExecResult;
import java.io.IOException;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.UUID;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives a VM restored from another VM's memory its own identity: hostname (the VM's name), a new
 * machine id, and fresh host randomness mixed into the guest's pool (a new generation id has
 * already made the kernel reseed).
 */
public final class GuestIdentity {
  private static final Logger LOG = LoggerFactory.getLogger(GuestIdentity.class);
  private static final SecureRandom RANDOM = new SecureRandom();

  private GuestIdentity() {}

  /**
   * Refreshes the identity of {@code vm} through its agent.
   *
   * @throws IOException if the agent failed or the guest's commands did
   */
  public static void refresh(VM vm, AgentClient agent, Duration deadline) throws IOException {
    byte[] seed = new byte[64];
    RANDOM.nextBytes(seed);
    String machineId = UUID.randomUUID().toString().replace("-", "");
    // the name is agent-vm's own ([A-Za-z0-9_.-]), so quoting it is safe
    ExecResult r =
        agent.exec(
            ExecRequest.script(
                    "hostname '"
                        + vm.name()
                        + "' && echo '"
                        + vm.name()
                        + "' > /etc/hostname && echo "
                        + machineId
                        + " > /etc/machine-id && cat > /dev/urandom",
                    "sh")
                .withStdin(seed)
                .withTimeout(deadline));
    if (r.exitCode() != 0) {
      throw new IOException(
          "identity refresh failed (exit " + r.exitCode() + "): " + r.stderrText());
    }
    LOG.debug(
        "{}: identity refreshed (machine id {}, seed {}...)",
        vm.name(),
        machineId,
        HexFormat.of().formatHex(seed, 0, 2));
  }
}
