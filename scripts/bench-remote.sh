#!/bin/bash
# RemoteBenchmark against a second libvirt host on this machine: a libvirtd in a network namespace
# of its own (the test harness's remote-libvirt-host.sh), removed afterwards. Needs root and a
# built benchmarks jar (mvn -o -q install -DskipTests, or scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
host=agentvm-bench-rh9 base=/var/tmp/agentvm-bench-rh9
script=agent-vm-core/src/test/resources/dev/agentvm/core/remote-libvirt-host.sh
trap 'bash "$script" down "$host" "$base"' EXIT
uri=$(bash "$script" up "$host" 9 "$base" | tail -1)
jar=$(ls -t benchmarks/target/agent-vm-benchmarks-*-all.jar | head -1)
java -cp "$jar" dev.agentvm.benchmarks.RemoteBenchmark "$uri" "${1:-3}"
