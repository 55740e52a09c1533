package dev.agentvm.execution;

import dev.agentvm.core.BootSource;
import dev.agentvm.core.DiskAttachment;
import dev.agentvm.core.VMTemplate;
import dev.agentvm.image.MicroImage;

/** Templates for the micro guest image and its flavours. */
public final class GuestImages {
  private GuestImages() {}

  /**
   * A template that boots {@code image}: its kernel and initramfs, and for a flavour its package
   * disk, read-only as {@code vda}, mounted on {@code /usr} (further disks follow as {@code
   * vdb}..).
   */
  public static VMTemplate.Builder template(String name, MicroImage image) {
    VMTemplate.Builder b =
        VMTemplate.builder(name)
            .boot(new BootSource(image.kernel(), image.initramfs(), MicroImage.DEFAULT_CMDLINE));
    image
        .packageDiskIfAny()
        .ifPresent(
            disk ->
                b.disk(
                    new DiskAttachment(
                        disk,
                        DiskAttachment.Format.RAW,
                        "vda",
                        true,
                        MicroImage.PACKAGE_DISK_MOUNT_POINT)));
    return b;
  }
}
