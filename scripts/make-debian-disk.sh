#!/usr/bin/env bash
# Builds a Debian 12 disk image (qcow2) with the agent-vm guest agent installed as a systemd
# service: the recipe for a user-supplied disk image (docs/disk-images.md).
#   scripts/make-debian-disk.sh OUT.qcow2 [MICRO_IMAGE_DIR]
# The agent and its Java runtime are taken from a built micro image (default: the newest in the
# cache). Needs root (debootstrap), debootstrap, cpio, mkfs.ext4 and qemu-img; takes ~1 min.
set -euo pipefail
out="$1"
cache="${AGENTVM_CACHE_DIR:-/var/cache/agent-vm}"
micro="${2:-$(ls -dt "$cache"/images/micro-* 2>/dev/null | head -1)}"
[ -f "$micro/initramfs.img" ] || { echo "no micro image in '$micro': build one first (README)" >&2; exit 1; }
repo="$(cd "$(dirname "$0")/.." && pwd)"
unit="$repo/agent-vm-image/src/main/resources/dev/agentvm/image/systemd/agentvm-agent.service"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "[disk] debootstrap (minbase + systemd) from $mirror"
debootstrap --variant=minbase --include=systemd-sysv,udev bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

echo "[disk] agent and runtime from $micro"
mkdir "$work/micro"
(cd "$work/micro" && cpio -idm --quiet 'opt/agentvm/*' < "$micro/initramfs.img")
cp -a "$work/micro/opt/agentvm" "$work/root/opt/"
install -m 0644 "$unit" "$work/root/etc/systemd/system/agentvm-agent.service"
mkdir -p "$work/root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/agentvm-agent.service \
  "$work/root/etc/systemd/system/multi-user.target.wants/agentvm-agent.service"
echo agentvm-disk > "$work/root/etc/hostname"
echo '/dev/vda / ext4 defaults 0 1' > "$work/root/etc/fstab"
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/usr/share/doc" "$work/root/usr/share/man" \
  "$work/root/var/lib/apt/lists/"*

echo "[disk] filesystem and qcow2"
mkfs.ext4 -q -F -L agentvm-root -d "$work/root" "$work/disk.raw" 1G
mkdir -p "$(dirname "$out")"
qemu-img convert -q -f raw -O qcow2 "$work/disk.raw" "$out.tmp"
mv "$out.tmp" "$out"
echo "[disk] $out ($(du -h "$out" | cut -f1))"
