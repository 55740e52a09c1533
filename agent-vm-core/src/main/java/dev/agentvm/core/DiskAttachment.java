package dev.agentvm.core;

import java.nio.file.Path;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A disk image file attached to a VM as a virtio block device.
 *
 * @param file the image file, readable (and writable unless {@code readOnly}) by the hypervisor's
 *     QEMU user
 * @param format the image format; internal snapshots need {@link Format#QCOW2}
 * @param target the guest device name, {@code vda} .. {@code vdz}
 * @param readOnly attach read-only
 * @param guestMountPoint where the micro image's {@code /init} mounts the disk's ext4 filesystem,
 *     or empty to leave it unmounted (a full distribution on the disk mounts what it wants)
 */
public record DiskAttachment(
    Path file, Format format, String target, boolean readOnly, String guestMountPoint) {
  private static final Pattern TARGET = Pattern.compile("vd[a-z]");
  private static final Pattern MOUNT_POINT = Pattern.compile("/[A-Za-z0-9_./-]*");

  /** Image formats QEMU reads. */
  public enum Format {
    QCOW2("qcow2"),
    RAW("raw");

    private final String driverType;

    Format(String driverType) {
      this.driverType = driverType;
    }

    /** The libvirt {@code <driver type=...>} value. */
    public String driverType() {
      return driverType;
    }
  }

  public DiskAttachment {
    Objects.requireNonNull(file, "file");
    Objects.requireNonNull(format, "format");
    Objects.requireNonNull(target, "target");
    Objects.requireNonNull(guestMountPoint, "guestMountPoint");
    file = file.toAbsolutePath();
    if (!TARGET.matcher(target).matches()) {
      throw new IllegalArgumentException("target must be vda..vdz, was '" + target + "'");
    }
    if (!guestMountPoint.isEmpty()
        && (!MOUNT_POINT.matcher(guestMountPoint).matches() || guestMountPoint.contains(".."))) {
      throw new IllegalArgumentException(
          "guestMountPoint must be empty or an absolute path of [A-Za-z0-9_./-] without '..', was '"
              + guestMountPoint
              + "'");
    }
  }

  /** A writable qcow2 disk whose ext4 filesystem the micro image mounts at {@code mountPoint}. */
  public static DiskAttachment qcow2(Path file, String target, String mountPoint) {
    return new DiskAttachment(file, Format.QCOW2, target, false, mountPoint);
  }
}
