#!/usr/bin/env bash
# Builds examples/consumer, a user's project that sees agent-vm only as installed artifacts (run
# after 'mvn install'), and runs it: a sandbox is created and answers. Fails if it does not.
set -euo pipefail
cd "$(dirname "$0")/../examples/consumer"
mvn -B -q -Dstyle.color=never package
out=$(java -cp "target/classes:$(cat target/classpath.txt)" com.example.consumer.Main agentvm-test-consumer-)
echo "[consumer] $out"
[ "$out" = "hello from a consumer of agent-vm" ] || { echo "[consumer] FAIL: unexpected output" >&2; exit 1; }
