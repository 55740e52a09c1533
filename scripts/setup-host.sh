#!/usr/bin/env bash
# Prepares a Debian host to run agent-vm: packages, libvirt daemons, /dev/kvm permissions.
# Idempotent: every step checks first and only acts when something is missing.
# Runs as root (CI and these machines); see README "Requirements" for a non-root host.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO="sudo" || die "not root and no sudo: run this script as root once (see README, Requirements)."
fi

# Host packages. Guest parts (kernel, busybox) are fetched later by the image builder with
# `apt-get download`, which needs the package lists, so apt-get update runs at least once.
PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients busybox-static kmod cpio git
          xz-utils binutils gcc libc6-dev openjdk-17-jdk-headless maven iproute2 procps e2fsprogs debootstrap
          openssl)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
lists_dir=/var/lib/apt/lists
if [ ${#missing[@]} -gt 0 ] || ! compgen -G "$lists_dir/*_Packages*" >/dev/null; then
  log "apt-get update"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "packages present"
fi

# /dev/kvm: libvirt runs QEMU as libvirt-qemu (group kvm). With root-only /dev/kvm, libvirt drops
# its capability cache on every start and each domain start costs ~76 s (host-facts.md).
if [ -e /dev/kvm ]; then
  if [ "$(stat -c %G /dev/kvm)" != kvm ] || [ "$(( $(stat -c '0%a' /dev/kvm) & 060 ))" -ne 48 ]; then
    getent group kvm >/dev/null || $SUDO groupadd -r kvm
    log "fixing /dev/kvm: group kvm, mode 660"
    $SUDO chgrp kvm /dev/kvm && $SUDO chmod 660 /dev/kvm
  fi
fi

# Daemons: systemd if it runs, otherwise started by hand, never a second copy. Checked again when
# libvirt does not answer: a daemon that was shutting down when first seen is started anew.
running() { pgrep -x "$1" >/dev/null 2>&1; }
ensure_daemons() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for u in virtlogd libvirtd; do
      systemctl is-active --quiet "$u" || { log "systemctl start $u"; $SUDO systemctl start "$u"; }
    done
  else
    running virtlogd || { log "starting virtlogd"; $SUDO virtlogd -d; }
    running libvirtd || { log "starting libvirtd"; $SUDO libvirtd -d; }
  fi
}
answers() { virsh -c "$URI" version >/dev/null 2>&1; }

URI="${AGENTVM_LIBVIRT_URI:-qemu:///system}"
ensure_daemons
for attempt in 1 2 3; do
  for i in $(seq 1 50); do
    answers && break 2
    sleep 0.2
  done
  [ "$attempt" -eq 3 ] && die "libvirt at $URI does not answer after 30 s. Check 'libvirtd' is running (pgrep libvirtd), that you may use $URI (root, or member of group libvirt), and /var/log/libvirt/libvirtd.log."
  log "libvirt at $URI does not answer yet; checking the daemons again"
  ensure_daemons
done
log "libvirt answers at $URI ($(virsh -c "$URI" version 2>/dev/null | awk '/Running hypervisor/{print $3,$4}'))"
