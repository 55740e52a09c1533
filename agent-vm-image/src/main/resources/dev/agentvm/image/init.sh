#!/bin/busybox sh
# /init of the agent-vm micro image (PID 1). Mounts the basics, loads the kernel modules listed by
# the image builder (dependency order), then runs the guest agent, restarting it if it dies.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin /mnt
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s
read up idle < /proc/uptime
echo "agentvm-init: start uptime=$up"
export AGENTVM_INIT_UPTIME=$up

mode=agent
extra_java=""
mounts=""
root=""
for a in $(cat /proc/cmdline); do
  case "$a" in
    agentvm.mode=*) mode="${a#agentvm.mode=}" ;;
    # a data disk to mount: agentvm.mount=vdb:/data or agentvm.mount=vdb:/data:ro
    agentvm.mount=*) mounts="$mounts ${a#agentvm.mount=}" ;;
    # boot a distribution from a disk (a user's image): agentvm.root=vda
    agentvm.root=*) root="${a#agentvm.root=}" ;;
    # extra JVM options for the agent, comma-separated (the kernel splits the command line at spaces)
    agentvm.java_opts=*) extra_java="$(echo "${a#agentvm.java_opts=}" | tr ',' ' ')" ;;
  esac
done
if [ "$mode" = bare ]; then
  echo "agentvm-init: bare mode, powering off"
  poweroff -f
fi

mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname agentvm
# Loads the modules listed in a file as "name path" lines (dependencies first), skipping those
# already loaded. No subshells: every fork costs under TCG.
load_modules() {
  [ -f "$1" ] || return 0
  while read -r n m; do
    [ -d "/sys/module/$n" ] && continue
    insmod "/lib/modules/$m" || echo "agentvm-init: insmod $m failed"
  done < "$1"
}
# The virtio bus first, then the driver of each virtio device this VM actually has.
load_modules /etc/agentvm/modules.d/bus
for d in /sys/bus/virtio/devices/*; do
  [ -f "$d/device" ] && load_modules "/etc/agentvm/modules.d/virtio-$(cat "$d/device")"
done
read up idle < /proc/uptime
echo "agentvm-init: modules loaded uptime=$up"

# A user's disk image: this initramfs only loaded the drivers (they stay loaded); the disk's own
# init (systemd) takes over and starts the agent from its service unit.
if [ -n "$root" ]; then
  mkdir -p /newroot
  if mount -t ext4 "/dev/$root" /newroot; then
    echo "agentvm-init: switching to the system on /dev/$root"
    umount /proc /sys 2>/dev/null
    mount --move /dev /newroot/dev 2>/dev/null || umount /dev
    exec switch_root /newroot /sbin/init
  fi
  echo "agentvm-init: cannot mount /dev/$root; starting the agent from the initramfs instead"
fi

# Loopback always; a NIC (the VM has one only if its template asked) gets DHCP in the background,
# so that the agent does not wait for a lease (or for a network without a DHCP server).
ip link set lo up
if [ -d /sys/class/net/eth0 ]; then
  udhcpc -i eth0 -s /etc/agentvm/udhcpc.sh -t 10 -T 1 -A 2 -b >/dev/console 2>&1
fi

for m in $mounts; do
  dev="${m%%:*}"; rest="${m#*:}"; dir="${rest%%:*}"; opt=rw
  [ "$rest" != "$dir" ] && opt="${rest#*:}"
  mkdir -p "$dir"
  if mount -t ext4 -o "$opt" "/dev/$dev" "$dir"; then
    echo "agentvm-init: mounted /dev/$dev on $dir ($opt)"
  else
    echo "agentvm-init: mount of /dev/$dev on $dir failed"
  fi
done

# A port named dev.agentvm.echo.0 (benchmarks add one) echoes raw bytes: the channel's own speed.
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = dev.agentvm.echo.0 ] || continue
  ( exec 3<>"/dev/${p##*/}"; while true; do cat <&3 >&3; sleep 0.05; done ) &
done

# UTF-8 for argv, environment and file names: on JDK 17 the JVM takes sun.jnu.encoding (and
# file.encoding) from the C locale (setlocale + nl_langinfo(CODESET)); with no locale they are
# ASCII and every non-ASCII character reaches commands as '?'. The image ships glibc's C.UTF-8
# under /lib/locale, outside /usr (a package disk is mounted over /usr). Commands inherit these.
export LOCPATH=/lib/locale LANG=C.UTF-8 LC_ALL=C.UTF-8
# -Xint: under TCG, JIT compiling at startup costs more than it saves (measured: HELLO ~1 s
# sooner); the agent's bulk work (I/O, CRC32, copies) runs in native code either way.
# -Xshare:auto uses the CDS archive made at image build time (~1.4 s faster start), agent.jsa and
# not the runtime's default archive (MicroImageBuilder says why); the agent runs
# from its module in the runtime image (-m) because the archive holds its classes there, not in a
# jar on a class path (~0.4 s less to HELLO, ~0.3 s less for the first command).
# VFORK: where the agent starts commands through ProcessBuilder (without its native library), no
# jspawnhelper exec in between (measured 140 -> 82 ms per EXEC).
# agentvm.guest.native: the agent's native library (sets the clock after a restore in-process,
# starts commands with one posix_spawn).
JAVA_OPTS="-Xint -XX:+UseSerialGC -Xshare:auto -XX:SharedArchiveFile=/opt/agentvm/jre/lib/server/agent.jsa -XX:-UsePerfData -Xmx64m -Xss512k -Djdk.lang.Process.launchMechanism=VFORK -Dagentvm.guest.native=/opt/agentvm/libagentvm-guest.so $extra_java"
while true; do
  read up idle < /proc/uptime
  echo "agentvm-init: starting agent uptime=$up"
  /opt/agentvm/jre/bin/java $JAVA_OPTS -m dev.agentvm.guest/dev.agentvm.guest.agent.GuestAgent
  echo "agentvm-init: agent exited with status $?, restarting in 1 s"
  sleep 1
done
