package dev.agentvm.core;

import java.nio.file.Path;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A host directory offered to the guest as a virtio-9p share, mounted in the guest on demand with
 * {@link dev.agentvm.core.agent.AgentClient#mount}.
 *
 * <p>Shares use libvirt's {@code mapped} access mode: the guest's owners and modes are kept in
 * extended attributes, so the guest can never create a set-uid file or a device node on the host.
 * Files and directories the guest creates appear on the host owned by the QEMU user with modes
 * {@code 0644} and {@code 0755}, so a host user other than root can read them.
 *
 * <p>QEMU cannot save a VM's memory while one of its shares is mounted in the guest.
 *
 * @param hostDir the directory on the host; the QEMU user must be able to read it (and write it,
 *     unless {@code readOnly})
 * @param tag the mount tag the guest sees: 1-31 of {@code [A-Za-z0-9_.-]}
 * @param readOnly refused writes are enforced by QEMU, not only by the guest's mount options
 */
public record ShareAttachment(Path hostDir, String tag, boolean readOnly) {
  private static final Pattern TAG = Pattern.compile("[A-Za-z0-9_.-]{1,31}");

  public ShareAttachment {
    Objects.requireNonNull(hostDir, "hostDir");
    Objects.requireNonNull(tag, "tag");
    hostDir = hostDir.toAbsolutePath();
    if (!TAG.matcher(tag).matches()) {
      throw new IllegalArgumentException("tag must be 1-31 of [A-Za-z0-9_.-], was '" + tag + "'");
    }
  }
}
