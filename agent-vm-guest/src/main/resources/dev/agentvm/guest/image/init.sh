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
for a in $(cat /proc/cmdline); do
  case "$a" in agentvm.mode=*) mode="${a#agentvm.mode=}" ;; esac
done
if [ "$mode" = bare ]; then
  echo "agentvm-init: bare mode, powering off"
  poweroff -f
fi

mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname agentvm
while read -r m; do
  insmod "/lib/modules/$m" || echo "agentvm-init: insmod $m failed"
done < /etc/agentvm/modules
read up idle < /proc/uptime
echo "agentvm-init: modules loaded uptime=$up"

JAVA_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -XX:-UsePerfData -Xmx64m -Xss512k"
while true; do
  /opt/agentvm/jre/bin/java $JAVA_OPTS -jar /opt/agentvm/agent.jar
  echo "agentvm-init: agent exited with status $?, restarting in 1 s"
  sleep 1
done
