#!/usr/bin/env bash
# Slurm at scale: N `true` jobs (default 1,000) on the 3-node test cluster of ../shared/cluster,
# driven by a plain `srun` loop, GNU parallel running srun, and orchestrate (`executor: slurm`);
# prints each one's wall time and the controller's RPCs per job (from `sdiag`, reset before
# each). Starts its own cluster (MaxJobCount raised so that N jobs fit) and stops it at the end.
#
# Usage: bench/slurm.sh [N] [J]   J: jobs in flight for parallel and orchestrate (default 5,
#                                  the cluster's CPUs). Needs root (the daemons).
set -euo pipefail
N="${1:-1000}"; J="${2:-5}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="$(cd "$HERE" && for d in ../shared/cluster ../../shared/cluster; do [ -d "$d" ] && { cd "$d"; pwd; break; }; done)"
[ -n "$CLUSTER" ] || { echo "slurm.sh: no shared/cluster found" >&2; exit 1; }
BIN="${ORCH_BIN:-$HERE/target/release/orchestrate}"
[ -x "$BIN" ] || (cd "$HERE" && cargo build --release -q)
command -v parallel >/dev/null || apt-get install -y -q parallel >&2
TMP="$(mktemp -d /tmp/orch-bench-slurm.XXXXXX)"; chmod 0711 "$TMP"
trap '"$CLUSTER/slurm-multi-down.sh" "$TMP/c" --rm >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
eval "$(EXTRA_CONF="MaxJobCount=$((N * 4 + 100))" SLURM_MULTI_PORT="${SLURM_MULTI_PORT:-7517}" \
    "$CLUSTER/slurm-multi-up.sh" "$TMP/c" 2>/dev/null)"
export SLURM_CONF
# Every RPC the controller served since the reset, but sdiag's own.
rpcs() { sdiag | sed -n '/by message type/,/by user/p' | grep -v REQUEST_STATS_INFO |
    sed -n 's/.*count:\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'; }
measure() { # measure NAME COMMAND...
    sdiag -r >/dev/null
    local t0 t1; t0=$(date +%s.%N); "${@:2}" >/dev/null 2>&1 || true; t1=$(date +%s.%N)
    local n; n=$(rpcs)
    awk -v name="$1" -v t0="$t0" -v t1="$t1" -v n="$n" -v jobs="$N" \
        'BEGIN { printf "| %s | %.1f s | %.1f ms | %d | %.2f |\n", name, t1 - t0, (t1 - t0) * 1000 / jobs, n, n / jobs }'
}
srun_loop() { for _ in $(seq "$N"); do srun -Q --input=none --ntasks=1 true; done; }
srun_parallel() { seq "$N" | parallel -j "$J" srun -Q --input=none --ntasks=1 true; }
{ echo "concurrency: $J"; echo "executor: slurm"; echo "jobs:"; echo "  - name: t"
  echo "    command: 'true'"; echo "    for_each: {range: [1, $N]}"; } > "$TMP/jobs.yaml"
orch() { ORCHESTRATE_STATE_DIR="$TMP/state" "$BIN" "$TMP/jobs.yaml" -q; }
echo "$N jobs of \`true\`, 3 nodes (5 CPUs), $J in flight"
echo
echo "| driver | wall | per job | controller RPCs | RPCs per job |"
echo "| --- | --- | --- | --- | --- |"
measure "srun loop (sequential)" srun_loop
measure "GNU parallel -j $J srun" srun_parallel
measure "orchestrate -j $J (executor: slurm)" orch
