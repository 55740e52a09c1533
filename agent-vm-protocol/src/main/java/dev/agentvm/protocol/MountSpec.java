package dev.agentvm.protocol;

/**
 * A virtio-9p share to mount in the guest.
 *
 * @param tag the share's mount tag (libvirt {@code <target dir='TAG'/>})
 * @param mountPoint absolute path in the guest; created if missing
 * @param readOnly mount read-only
 */
public record MountSpec(String tag, String mountPoint, boolean readOnly) {
  public byte[] encode() {
    return new PayloadWriter().string(tag).string(mountPoint).u8(readOnly ? 1 : 0).toByteArray();
  }

  public static MountSpec decode(byte[] payload) throws ProtocolException {
    PayloadReader r = new PayloadReader(payload);
    MountSpec m = new MountSpec(r.string(), r.string(), r.u8() != 0);
    r.end();
    return m;
  }
}
