#!/usr/bin/env bash
# Runs every test the way CI does: host setup (idempotent), then unit, property and real-VM
# integration tests with every quality gate (mvn install: verify, then the artifacts into the local
# repository), then a user's project built against those artifacts alone (examples/consumer), then
# a check that nothing was left behind, then the coverage gate.
#   ./scripts/test.sh [extra maven args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
# AGENTVM_MVN_THREADS=2 builds two modules at a time, their VM tests still one module at a time
# (dev.agentvm.core.VmTestLock). On two cores it was no faster (28:19 against 27:34): the guests
# need the CPU that the other module's build takes.
mvn -B -T "${AGENTVM_MVN_THREADS:-1}" -Dstyle.color=never install "$@"
bash scripts/check-consumer.sh

uri="${AGENTVM_LIBVIRT_URI:-qemu:///system}"
prefixes='^agentvm-(test|probe|bench|junit)-'
leaked=$(virsh -c "$uri" list --all --name 2>/dev/null | grep -E "$prefixes" || true)
if [ -n "$leaked" ]; then
  echo "[test] FAIL: tests left libvirt domains behind:" >&2
  echo "$leaked" >&2
  exit 1
fi
left=$( (virsh -c "$uri" net-list --all --name; virsh -c "$uri" nwfilter-list | awk 'NR>2{print $2}') 2>/dev/null | grep -E "$prefixes" || true)
if [ -n "$left" ]; then
  echo "[test] FAIL: tests left libvirt networks or nwfilters behind:" >&2
  echo "$left" >&2
  exit 1
fi
# the second libvirt host of the remote-host tests: its namespace, daemons and directories
if command -v ip >/dev/null && ip netns list 2>/dev/null | grep -qE '^agentvm-(test|bench)-'; then
  echo "[test] FAIL: tests left a test libvirt host's network namespace behind:" >&2
  ip netns list | grep -E '^agentvm-(test|bench)-' >&2
  exit 1
fi
left=$(ls -d /var/tmp/agentvm-test-* /var/tmp/agentvm-bench-* 2>/dev/null || true)
if [ -n "$left" ]; then
  echo "[test] FAIL: tests left a test libvirt host's directories behind:" >&2
  echo "$left" >&2
  exit 1
fi
if command -v ip >/dev/null && ip netns list 2>/dev/null | grep -q '^agvt'; then
  echo "[test] FAIL: tests left network namespaces behind:" >&2
  ip netns list | grep '^agvt' >&2
  exit 1
fi
state="${AGENTVM_STATE_DIR:-/var/lib/agent-vm}"
for d in run workspaces images outputs sandboxes; do
  left=$(ls -A "$state/$d" 2>/dev/null | grep -E "$prefixes" || true)
  if [ -n "$left" ]; then
    echo "[test] FAIL: tests left files in $state/$d:" >&2
    echo "$left" >&2
    exit 1
  fi
done
# workspace layers that only test sandboxes used (empty-* bases and the layers of warm images, named
# in .warm/*.record, are a shared cache; warm-* are an earlier version's warm layers)
warm=$(sed -n 's/^layer=\(.*\)$/\1.qcow2/p' "$state"/sandboxes/.warm/*.record 2>/dev/null || true)
left=$(ls -A "$state/sandboxes/.layers" 2>/dev/null | grep -Ev '^(empty|warm)-' \
  | grep -vxF -f <(printf '%s\n' "$warm") || true)
if [ -n "$left" ]; then
  echo "[test] FAIL: sandbox disk layers left behind in $state/sandboxes/.layers:" >&2
  echo "$left" >&2
  exit 1
fi
# git task scratch directories (bundles) and the test's persistent slots
left=$( (ls -A "$state/git-tasks" 2>/dev/null; ls -A "$state/slots" 2>/dev/null | grep -E '^test-') || true)
if [ -n "$left" ]; then
  echo "[test] FAIL: tests left git task files or slots behind:" >&2
  echo "$left" >&2
  exit 1
fi
echo "[test] no test domains, networks, filters, namespaces, runtime directories, workspaces, images, sandboxes, layers, git task files or slots left behind"
# line coverage per module (unit + integration tests) against coverage/minimums
bash scripts/coverage-gate.sh
