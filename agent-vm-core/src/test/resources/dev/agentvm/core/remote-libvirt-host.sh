#!/bin/bash
# A second, independent libvirt host on this machine, for tests: libvirtd and virtlogd in a network
# namespace of their own (reached only at the namespace's address over qemu+tcp), with their own
# runtime, state, log and configuration directories, and a mount namespace in which this machine's
# agent-vm state, caches, /tmp, /work, /root and /home do not exist: nothing the client writes can
# reach the daemon except through libvirt. No packet leaves the machine (a veth pair, no route out).
#
#   remote-libvirt-host.sh up   NAME INDEX BASE [tls]
#                                                 start (tears down a leftover of the same NAME first);
#                                                 with "tls", over qemu+tls only: a CA, server and
#                                                 client certificates made for this host (one day),
#                                                 the client's in BASE/client-pki (libvirt's pkipath)
#   remote-libvirt-host.sh rogue-pki NAME BASE OUT  a client certificate from a CA the host does not
#                                                 know, with both CAs, in OUT (a TLS host)
#   remote-libvirt-host.sh stop NAME BASE         kill libvirtd only (the host "goes away"; QEMU stays)
#   remote-libvirt-host.sh start NAME BASE        start libvirtd again
#   remote-libvirt-host.sh freeze|thaw NAME BASE  SIGSTOP / SIGCONT libvirtd (a host that hangs)
#   remote-libvirt-host.sh down NAME BASE         kill everything in the namespace, remove it all
set -euo pipefail
cmd=$1 name=$2
veth=$(printf '%s' "$name" | md5sum | cut -c1-8)   # interface names are at most 15 bytes

in_ns() { # runs "$@" inside the daemon's network and mount namespaces
  local pid
  pid=$(cat "$BASE/run/virtlogd.pid")
  nsenter --target "$pid" --net --mount -- "$@"
}

# openssl, its complaints shown only when it fails
ossl() {
  local err
  if ! err=$(openssl "$@" 2>&1); then echo "openssl $1 failed: $err" >&2; return 1; fi
}

make_ca() { # DIR CN: a CA (cakey.pem, cacert.pem) valid for a day
  ossl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$1/cakey.pem" -out "$1/cacert.pem"
}

make_client() { # CA_DIR OUT_DIR: a client certificate signed by that CA
  ossl req -newkey rsa:2048 -nodes -subj "/CN=agent-vm test client" \
    -keyout "$2/clientkey.pem" -out "$2/client.csr"
  ossl x509 -req -days 1 -in "$2/client.csr" -CA "$1/cacert.pem" -CAkey "$1/cakey.pem" \
    -CAcreateserial -out "$2/clientcert.pem" -extfile <(printf '%s\n' \
      "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth")
  rm -f "$2/client.csr"
}

start_libvirtd() {
  in_ns libvirtd -d -l -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
  for _ in $(seq 1 100); do
    if [ -S "$BASE/run/libvirt-sock" ] && [ -s "$BASE/run/libvirtd.pid" ]; then return 0; fi
    sleep 0.1
  done
  echo "libvirtd in $name did not start" >&2
  exit 1
}

case $cmd in
up)
  index=$3 BASE=$4 mode=${5:-tcp}
  bash "$0" down "$name" "$BASE" || true
  hostip=10.213.$index.1 nsip=10.213.$index.2
  mkdir -p "$BASE"/{run,lib,cache,log,etc}
  # the daemons' configuration and the built-in network filters; not this machine's persistent
  # domains, networks, pools or secrets (those would come up on the test host too)
  cp -a /etc/libvirt/*.conf "$BASE/etc/"
  [ -d /etc/libvirt/nwfilter ] && cp -a /etc/libvirt/nwfilter "$BASE/etc/"
  if [ "$mode" = tls ]; then
    # libvirt's PKI as its docs describe it, made with openssl: the server's certificate names the
    # namespace's address (libvirt's client checks it), the client's is what the daemon checks
    pki=$BASE/etc/pki client=$BASE/client-pki
    mkdir -p "$pki" "$client"
    make_ca "$pki" "agent-vm test CA $name"
    ossl req -newkey rsa:2048 -nodes -subj "/CN=$nsip" -keyout "$pki/serverkey.pem" -out "$pki/server.csr"
    ossl x509 -req -days 1 -in "$pki/server.csr" -CA "$pki/cacert.pem" -CAkey "$pki/cakey.pem" \
      -CAcreateserial -out "$pki/servercert.pem" -extfile <(printf '%s\n' \
        "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:$nsip")
    make_client "$pki" "$client"
    cp "$pki/cacert.pem" "$client/cacert.pem"
    rm -f "$pki/server.csr" "$pki/cakey.pem" "$pki/cacert.srl"
    listen="listen_tls = 1
listen_tcp = 0
key_file = \"/etc/libvirt/pki/serverkey.pem\"
cert_file = \"/etc/libvirt/pki/servercert.pem\"
ca_file = \"/etc/libvirt/pki/cacert.pem\""
    uri="qemu+tls://$nsip/system?pkipath=$client"
  else
    listen="listen_tls = 0
listen_tcp = 1
auth_tcp = \"none\""
    uri="qemu+tcp://$nsip/system"
  fi
  cat > "$BASE/etc/libvirtd.conf" <<CONF
$listen
listen_addr = "$nsip"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
# the daemon drops a client that cannot answer its pings after 3 s rather than libvirt's 30 s
# (5 s x 5): a client whose writes to a guest that stopped reading block in libvirt waits for this
keepalive_interval = 1
keepalive_count = 3
CONF
  ip netns add "$name"
  ip link add "h$veth" type veth peer name "n$veth"
  ip link set "n$veth" netns "$name"
  ip addr add "$hostip/30" dev "h$veth"
  ip link set "h$veth" up
  ip netns exec "$name" ip addr add "$nsip/30" dev "n$veth"
  ip netns exec "$name" ip link set "n$veth" up
  ip netns exec "$name" ip link set lo up
  hide=""
  for d in /var/lib/agent-vm /var/cache/agent-vm /tmp /work /root /home; do
    [ -d "$d" ] && hide="$hide mount -t tmpfs -o mode=0755,size=1m none $d;"
  done
  # daemons outlive this shell and keep the mount namespace alive; nsenter rather than
  # "ip netns exec", which would remount /sys and hide the cgroups QEMU's limits need
  unshare --mount --propagation private nsenter --net="/run/netns/$name" -- bash -c "
    set -e
    mount --bind '$BASE/run' /run/libvirt
    mount --bind '$BASE/lib' /var/lib/libvirt
    mount --bind '$BASE/cache' /var/cache/libvirt
    mount --bind '$BASE/log' /var/log/libvirt
    mount --bind '$BASE/etc' /etc/libvirt
    $hide
    mkdir -p /var/lib/libvirt/qemu /var/lib/libvirt/images /var/log/libvirt/qemu
    virtlogd -d -p /run/libvirt/virtlogd.pid
  "
  for _ in $(seq 1 50); do [ -s "$BASE/run/virtlogd.pid" ] && break; sleep 0.1; done
  start_libvirtd
  echo "$uri"
  ;;
rogue-pki)
  # OUT: a client certificate from a CA the host does not know; cacert.pem holds the host's CA and
  # that one (so the client trusts the host and its own certificate, and the host must refuse
  # it), rogue-ca.pem the other CA alone (a client that must refuse the host)
  BASE=$3 out=$4
  mkdir -p "$out/ca"
  make_ca "$out/ca" "agent-vm rogue CA"
  make_client "$out/ca" "$out"
  cat "$BASE/client-pki/cacert.pem" "$out/ca/cacert.pem" > "$out/cacert.pem"
  cp "$out/ca/cacert.pem" "$out/rogue-ca.pem"
  rm -rf "$out/ca"
  ;;
stop)
  BASE=$3
  if [ -s "$BASE/run/libvirtd.pid" ]; then
    kill -9 "$(cat "$BASE/run/libvirtd.pid")" 2>/dev/null || true
    rm -f "$BASE/run/libvirtd.pid"
  fi
  ;;
freeze|thaw)
  BASE=$3
  kill "-$( [ "$cmd" = freeze ] && echo STOP || echo CONT )" "$(cat "$BASE/run/libvirtd.pid")"
  ;;
start)
  BASE=$3
  rm -f "$BASE/run/libvirt-sock"
  start_libvirtd
  ;;
down)
  BASE=$3
  if ip netns list | awk '{print $1}' | grep -qx "$name"; then
    for _ in 1 2 3 4 5; do
      pids=$(ip netns pids "$name" || true)
      [ -z "$pids" ] && break
      kill -9 $pids 2>/dev/null || true
      sleep 0.2
    done
    ip netns del "$name" || true
  fi
  ip link del "h$veth" 2>/dev/null || true
  rm -rf "$BASE"
  ;;
*)
  echo "usage: $0 up|stop|start|down NAME ..." >&2
  exit 2
  ;;
esac
