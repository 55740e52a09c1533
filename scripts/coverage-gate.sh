#!/usr/bin/env bash
# The coverage gate: line coverage per library module, from unit and integration tests together
# (JaCoCo's aggregate report, written by 'mvn verify' in coverage/), against coverage/minimums.
# Every module's tests count for every module's classes. Fails (exit 1) when a module is below its
# minimum or missing from the report.
#   ./scripts/coverage-gate.sh [path/to/jacoco.csv]
set -euo pipefail
cd "$(dirname "$0")/.."
csv="${1:-coverage/target/site/jacoco-aggregate/jacoco.csv}"
[ -f "$csv" ] || { echo "[coverage] no report at $csv: run 'mvn verify' first" >&2; exit 1; }
awk -F, -v minimums=coverage/minimums '
  BEGIN {
    while ((getline line < minimums) > 0) {
      if (line ~ /^[ \t]*(#|$)/) continue
      split(line, f, /[ \t]+/); want[f[1]] = f[2]; order[++n] = f[1]
    }
  }
  NR > 1 { g = $1; sub(/.*\//, "", g); missed[g] += $8; covered[g] += $9 }
  END {
    bad = 0
    printf "%-22s %8s %8s %8s\n", "module", "lines", "covered", "minimum"
    for (i = 1; i <= n; i++) {
      m = order[i]; total = missed[m] + covered[m]
      if (total == 0) { printf "%-22s %8s %8s %7s%%  MISSING\n", m, "-", "-", want[m]; bad = 1; continue }
      pct = 100.0 * covered[m] / total
      flag = (pct + 1e-9 < want[m]) ? "  BELOW" : ""
      if (flag != "") bad = 1
      printf "%-22s %8d %7.1f%% %7s%%%s\n", m, total, pct, want[m], flag
    }
    exit bad
  }' "$csv" && echo "[coverage] every module meets its minimum" || { echo "[coverage] FAIL: a module is below its minimum (coverage/minimums)" >&2; exit 1; }
