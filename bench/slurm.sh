#!/usr/bin/env bash
# Slurm at scale: N `true` jobs (default 1,000) on the 3-node test cluster of ../shared/cluster,
# driven by a plain `srun` loop, GNU parallel running srun, and orchestrate (`executor: slurm`,
# whose jobs run on worker steps of one allocation), side by side in one hyperfine run; prints each one's
# wall time and the controller's RPCs per job (from `sdiag`, reset before each run) beside the
# goal. Then a background fan-out of the same N items (`background: true`, `wait: true`: one
# job array), with the controller's RPCs by type and per job. Starts its own cluster
# (MaxJobCount raised so that every run's jobs fit) and stops it.
#
# Usage: bench/slurm.sh [N] [J]   J: jobs in flight for parallel and orchestrate (default 5,
#                                  the cluster's CPUs); RUNS=R runs each (default 1: the srun
#                                  loop alone takes minutes). Needs root (the daemons).
#                                  SECTIONS="steps background" (the default) or either alone.
set -euo pipefail
N="${1:-1000}"; J="${2:-5}"; RUNS="${RUNS:-1}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="$(cd "$HERE" && for d in ../shared/cluster ../../shared/cluster; do [ -d "$d" ] && { cd "$d"; pwd; break; }; done)"
[ -n "$CLUSTER" ] || { echo "slurm.sh: no shared/cluster found" >&2; exit 1; }
BIN="${ORCH_BIN:-$HERE/target/release/orchestrate}"
[ -x "$BIN" ] || (cd "$HERE" && cargo build --release -q)
command -v parallel >/dev/null || apt-get install -y -q parallel >&2
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >&2
TMP="$(mktemp -d /tmp/orch-bench-slurm.XXXXXX)"; chmod 0711 "$TMP"
trap '"$CLUSTER/slurm-multi-down.sh" "$TMP/c" --rm >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
# Ended jobs are kept (MinJobAge): room for every srun of every run.
eval "$(EXTRA_CONF="MaxJobCount=$((N * (2 * RUNS + 1) + 100))" \
    SLURM_MULTI_PORT="${SLURM_MULTI_PORT:-7517}" "$CLUSTER/slurm-multi-up.sh" "$TMP/c" 2>/dev/null)"
export SLURM_CONF
{ echo "concurrency: $J"; echo "executor: slurm"; echo "jobs:"; echo "  - name: t"
  echo "    command: 'true'"; echo "    for_each: {range: [1, $N]}"; } > "$TMP/jobs.yaml"
# One benchmarked command: a driver, then the RPCs the controller served since hyperfine's
# `--prepare` reset them (sdiag's own left out), into rpc-DRIVER.
cat > "$TMP/run.sh" <<SCRIPT
export SLURM_CONF="$SLURM_CONF"
srun_loop() { for _ in \$(seq "$N"); do srun -Q --input=none --ntasks=1 true; done; }
srun_parallel() { seq "$N" | parallel -j "$J" srun -Q --input=none --ntasks=1 true; }
orch() { ORCHESTRATE_STATE_DIR="$TMP/state" "$BIN" "$TMP/jobs.yaml" -q; }
"\$1" >/dev/null 2>&1 || true
sdiag | sed -n '/by message type/,/by user/p' | grep -v REQUEST_STATS_INFO |
    sed -n 's/.*count:\([0-9]*\).*/\1/p' | awk '{ s += \$1 } END { print s + 0 }' > "$TMP/rpc-\$1"
SCRIPT
SECTIONS=" ${SECTIONS:-steps background} "
if [[ "$SECTIONS" == *" steps "* ]]; then
names=("srun loop (sequential)" "GNU parallel -j $J srun" "orchestrate -j $J (worker steps in one allocation)")
drivers=(srun_loop srun_parallel orch)
args=()
for i in 0 1 2; do args+=(-n "${names[$i]}" "bash $TMP/run.sh ${drivers[$i]}"); done
hyperfine --runs "$RUNS" --prepare "sdiag -r" --export-json "$TMP/h.json" --style basic \
    "${args[@]}" >&2
echo
echo "$N jobs of \`true\`, 3 nodes (5 CPUs), $J in flight, $RUNS run(s) each; goal: RPCs per job near 1"
echo
echo "| driver | wall | per job | controller RPCs | RPCs per job |"
echo "| --- | --- | --- | --- | --- |"
for i in 0 1 2; do
    wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["mean"])' "$TMP/h.json" "$i")
    n=$(cat "$TMP/rpc-${drivers[$i]}")
    awk -v name="${names[$i]}" -v w="$wall" -v n="$n" -v jobs="$N" \
        'BEGIN { printf "| %s | %.1f s | %.1f ms | %d | %.2f |\n", name, w, w * 1000 / jobs, n, n / jobs }'
done
fi

if [[ "$SECTIONS" == *" background "* ]]; then
{ echo "concurrency: $J"; echo "executor: slurm"; echo "wait: true"; echo "jobs:"; echo "  - name: b"
  echo "    command: 'true'"; echo "    background: true"; echo "    for_each: {range: [1, $N]}"; } > "$TMP/bg.yaml"
sdiag -r >/dev/null
t0=$(date +%s.%N)
ORCHESTRATE_STATE_DIR="$TMP/state-bg" "$BIN" "$TMP/bg.yaml" -q >/dev/null 2>&1 || true
t1=$(date +%s.%N)
sdiag | sed -n '/by message type/,/by user/p' | grep -v REQUEST_STATS_INFO |
    sed -n 's/^[[:space:]]*\([A-Z_]*\) *( *[0-9]*) count:\([0-9]*\).*/\1 \2/p' > "$TMP/rpc-bg"
arrays=$(squeue -h -t all -o %F | sort -u | wc -l)
echo
echo "Background fan-out: $N items of \`true\` (\`background: true\`, \`wait: true\`, -j $J), $arrays Slurm job(s)"
echo
echo "| RPC | count | per job |"
echo "| --- | --- | --- |"
awk -v jobs="$N" '{ s += $2; printf "| %s | %d | %.3f |\n", $1, $2, $2 / jobs }
    END { printf "| all | %d | %.2f |\n", s, s / jobs }' "$TMP/rpc-bg"
awk -v a="$t0" -v b="$t1" -v jobs="$N" 'BEGIN { printf "\nwall %.1f s (%.1f ms per job)\n", b - a, (b - a) * 1000 / jobs }'
fi
