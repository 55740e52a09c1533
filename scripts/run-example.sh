#!/usr/bin/env bash
# Runs one of the examples in examples/ (default HelloSandbox) on a real VM.
# Sets the host up first (idempotent), builds the examples jar, then runs it.
#   ./scripts/run-example.sh [ExampleName] [args...]
set -euo pipefail
cd "$(dirname "$0")/.."
example="${1:-HelloSandbox}"; shift || true
bash scripts/setup-host.sh
echo "[run-example] building"
mvn -B -q -Dstyle.color=never -DskipTests -DskipITs package -pl examples -am
exec java -cp examples/target/agent-vm-examples-*-all.jar "dev.agentvm.examples.$example" "$@"
