package dev.agentvm.protocol;

/** Protocol-wide constants shared by host and guest. */
public final class Protocol {
  /** The protocol version this build speaks (negotiated in HELLO). */
  public static final int VERSION = 1;

  /** The virtio-serial port name the guest agent listens on. */
  public static final String VIRTIO_SERIAL_PORT_NAME = "dev.agentvm.agent.0";

  private Protocol() {}
}
