#!/usr/bin/env bash
# Runs the whole benchmark set (issue 19) with one command and prints, at the end, one table: every
# hot path beside its floor measured in the same run, the ratio and the goal. Each benchmark's own
# report and the table are kept in the directory printed at the end.
#   scripts/bench.sh [rounds]        (default 3; the remote host's benchmark runs with 2)
# Needs what scripts/test.sh needs (it runs the same host setup) and builds the benchmarks jar.
# Benchmarks are not tests: nothing here asserts a timing. Run nothing else VM-heavy meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
bash scripts/setup-host.sh
mvn -B -q -Dstyle.color=never install -DskipTests -Dspotbugs.skip -Djacoco.skip \
  -Dmaven.javadoc.skip=true -pl benchmarks -am
jar=$(ls -t benchmarks/target/agent-vm-benchmarks-*-all.jar | head -1) # the one just built
out=$(mktemp -d /tmp/agentvm-bench-report.XXXXXX)

run() {
  local name=$1
  shift
  echo "[bench] $name $*"
  # a failing or hung benchmark is reported in the table and does not stop the others
  if ! timeout 40m java -cp "$jar" "dev.agentvm.benchmarks.$name" "$@" >"$out/$name.log" 2>&1; then
    printf 'RATIO\t%s\tFAILED (see %s)\t\t\t\t\n' "$name" "$out/$name.log" >>"$out/$name.log"
  fi
  { grep -v '^RATIO' "$out/$name.log" | grep -vE '^[0-9:.]+ \[' || true; } | tail -40
}

run BootBenchmark "$rounds"
run ProtocolBenchmark
run StorageBenchmark "$rounds"
run SandboxBenchmark "$rounds"
run DensityBenchmark 3 # KSM only with --ksm, on a host running nothing else (docs/security.md)
run LoadBenchmark 100 4
run ExecutionBenchmark 20
echo "[bench] RemoteBenchmark (a second libvirt host in a network namespace)"
if ! timeout 40m bash scripts/bench-remote.sh 2 >"$out/RemoteBenchmark.log" 2>&1; then
  printf 'RATIO\tRemoteBenchmark\tFAILED (see %s)\t\t\t\t\n' "$out/RemoteBenchmark.log" \
    >>"$out/RemoteBenchmark.log"
fi

{
  echo
  echo "agent-vm benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(virsh -c qemu:///system version 2>/dev/null | grep -i 'running hypervisor' | sed 's/.*: //')"
  printf '%-72s | %-14s | %-14s | %-6s | %-8s | %s\n' "path / floor (same run)" "path" "floor" \
    "ratio" "goal" ""
  printf '%s\n' "$(printf '%.0s-' {1..130})"
  for n in BootBenchmark ProtocolBenchmark StorageBenchmark SandboxBenchmark DensityBenchmark \
    LoadBenchmark ExecutionBenchmark RemoteBenchmark; do
    cat "$out/$n.log" 2>/dev/null || true
  done | { grep '^RATIO' || true; } | while IFS=$'\t' read -r _ path value floor ratio goal verdict; do
    printf '%-72s | %-14s | %-14s | %-6s | %-8s | %s\n' "$path" "$value" "$floor" "$ratio" \
      "$goal" "$verdict"
  done
} | tee "$out/table.txt"
echo "[bench] reports: $out"
