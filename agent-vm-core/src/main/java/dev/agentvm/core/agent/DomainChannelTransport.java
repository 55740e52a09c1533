package dev.agentvm.core.agent;

import dev.agentvm.core.spi.DomainHandle;
import java.io.IOException;

/**
 * The agent's virtio-serial channel reached through the hypervisor ({@code virDomainOpenChannel})
 * rather than its local UNIX socket: works wherever the libvirt URI reaches, remote hosts included.
 */
public final class DomainChannelTransport implements AgentTransport {
  private final DomainHandle domain;
  private final String channelName;

  public DomainChannelTransport(DomainHandle domain, String channelName) {
    this.domain = domain;
    this.channelName = channelName;
  }

  @Override
  public Connection connect() throws IOException {
    return domain.openChannel(channelName);
  }

  @Override
  public String describe() {
    return "libvirt channel " + channelName + " of " + domain.name();
  }
}
