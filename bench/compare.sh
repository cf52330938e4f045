#!/usr/bin/env bash
# Compares two orchestrate binaries on the trivial-job and output workloads of bench/run.sh,
# side by side in one hyperfine invocation per workload, so that a noisy machine weighs on
# both alike: a before/after check of a change.
#
# Usage: bench/compare.sh OLD_BINARY NEW_BINARY [RUNS]
set -euo pipefail
OLD="$1"; NEW="$2"; RUNS="${3:-10}"
command -v hyperfine >/dev/null || { echo "compare: hyperfine is required" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/orchestrate-compare.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
TRUE="$(type -P true)"
repeat() { awk -v n="$1" -v s="$2" 'BEGIN { for (i = 0; i < n; i++) print s }'; }
job_file() { # job_file NAME N J COMMAND
    { echo "concurrency: $3"; echo "jobs:"; repeat "$2" "  - $4"; } > "$TMP/$1.yaml"
}
job_file a 2000 2 "$TRUE"
job_file b 200 2 "head -c 1048576 /dev/zero"
job_file d 10000 2 "$TRUE"
for w in a b d; do
    echo "== workload $w"
    # Each run gets a fresh store: history would otherwise grow across runs.
    hyperfine -N --runs "$RUNS" --warmup 1 \
        --prepare "rm -rf $TMP/state-old $TMP/state-new" \
        -n old "env ORCHESTRATE_STATE_DIR=$TMP/state-old $OLD $TMP/$w.yaml -q" \
        -n new "env ORCHESTRATE_STATE_DIR=$TMP/state-new $NEW $TMP/$w.yaml -q" \
        --export-markdown "$TMP/$w.md" >/dev/null
    cat "$TMP/$w.md"
done
