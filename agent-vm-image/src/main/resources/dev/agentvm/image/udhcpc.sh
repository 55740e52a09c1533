#!/bin/busybox sh
# busybox udhcpc's lease script in the micro image: applies the address, route and DNS it got.
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
      ip route add default via "${router%% *}" dev "$interface"
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "agentvm-dhcp: $interface $ip/${mask:-24}"
    ;;
esac
exit 0
