#!/usr/bin/env bash
# Runs every test the way CI does: host setup (idempotent), then unit, property and real-VM
# integration tests (mvn verify), then a check that no test left a VM or runtime file behind.
#   ./scripts/test.sh [extra maven args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
mvn -B -Dstyle.color=never verify "$@"

uri="${AGENTVM_LIBVIRT_URI:-qemu:///system}"
leaked=$(virsh -c "$uri" list --all --name 2>/dev/null | grep -E '^agentvm-(test|probe|bench)-' || true)
if [ -n "$leaked" ]; then
  echo "[test] FAIL: tests left libvirt domains behind:" >&2
  echo "$leaked" >&2
  exit 1
fi
run_dir="${AGENTVM_STATE_DIR:-/var/lib/agent-vm}/run"
if [ -d "$run_dir" ] && [ -n "$(ls -A "$run_dir" 2>/dev/null | grep -E '^agentvm-(test|probe|bench)-' || true)" ]; then
  echo "[test] FAIL: tests left runtime directories in $run_dir:" >&2
  ls -A "$run_dir" >&2
  exit 1
fi
echo "[test] no test domains or runtime directories left behind"
