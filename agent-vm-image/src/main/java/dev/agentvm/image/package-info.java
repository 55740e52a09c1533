/**
 * Guest images built from Debian packages: {@link dev.agentvm.image.MicroImageBuilder} makes the
 * micro image (kernel, initramfs with the guest agent) and the package disks of image flavours,
 * cached by content hash.
 */
package dev.agentvm.image;
