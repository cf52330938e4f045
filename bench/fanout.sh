#!/usr/bin/env bash
# Fan-out that streams: peak RSS and wall time of `check` and of a run of a large
# `for_each: {range: ...}` of `true`, the time to the first job, and the per-job overhead,
# beside `seq 1 N | xargs -P2 -n1 true` and GNU parallel. Each figure is printed beside its
# goal (peak RSS < 64 MB; first job < 50 ms).
#
# Usage: bench/fanout.sh [BINARY]
#   CHECK_SIZES  item counts for `check`          (default: "1000000 10000000")
#   RUN_SIZES    item counts for a run            (default: "100000 1000000")
#   CMP_SIZE     item count for xargs and parallel (default: the first of RUN_SIZES)
# A run of 10^7 `true` takes hours on a small machine: add it to RUN_SIZES to measure it.
set -euo pipefail
BIN="$(realpath "${1:-target/release/orchestrate}")"
CHECK_SIZES="${CHECK_SIZES:-1000000 10000000}"
RUN_SIZES="${RUN_SIZES:-100000 1000000}"
CMP_SIZE="${CMP_SIZE:-${RUN_SIZES%% *}}"
if ! command -v parallel >/dev/null; then
    apt-get install -y parallel >/dev/null 2>&1 || echo "fanout: GNU parallel missing, not compared" >&2
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/orchestrate-fanout.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
export ORCHESTRATE_STATE_DIR="$TMP/state"

range_file() { # range_file N -> job file path
    printf 'jobs:\n  - name: t\n    command: "true {item}"\n    for_each: {range: [1, %s]}\n' "$1" > "$TMP/r$1.yaml"
    echo "$TMP/r$1.yaml"
}

# measure LABEL CMD...: prints wall seconds and peak RSS (MB) from /usr/bin/time -v.
measure() {
    local label="$1"; shift
    /usr/bin/time -v -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" || true
    local rss wall
    rss=$(awk -F: '/Maximum resident/ { printf "%.1f", $2 / 1024 }' "$TMP/time")
    wall=$(awk '/Elapsed \(wall clock\)/ { print $NF }' "$TMP/time")
    local verdict="ok"
    awk -v r="$rss" 'BEGIN { exit !(r < 64) }' || verdict="OVER"
    printf '%-44s wall %-10s peak RSS %8s MB  (goal < 64 MB: %s)\n' "$label" "$wall" "$rss" "$verdict"
    echo "$wall" > "$TMP/last_wall"
}

seconds() { # h:mm:ss or m:ss.cc -> seconds
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }' <<<"$1"
}

echo "== check"
for n in $CHECK_SIZES; do
    measure "check, $n items" "$BIN" check "$(range_file "$n")"
done

echo "== first job (range of 10000000, -j 1; the run is killed once it started)"
printf 'jobs:\n  - name: t\n    shell: "test {item} != 1 || date +%%s.%%N > %s/first; sleep 1"\n    for_each: {range: [1, 10000000]}\n' "$TMP" > "$TMP/first.yaml"
rm -f "$TMP/first"
t0=$(date +%s.%N)
"$BIN" "$TMP/first.yaml" -q --no-store -j 1 &
pid=$!
for _ in $(seq 1 500); do [ -s "$TMP/first" ] && break; sleep 0.01; done
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ -s "$TMP/first" ]; then
    ms=$(awk -v a="$t0" -v b="$(cat "$TMP/first")" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    verdict=ok; awk -v m="$ms" 'BEGIN { exit !(m < 50) }' || verdict=OVER
    printf '%-44s %s ms  (goal < 50 ms: %s)\n' "launch to first job's start" "$ms" "$verdict"
else
    echo "launch to first job's start: no first job within 5 s"
fi

echo "== runs of \`true\`"
for n in $RUN_SIZES; do
    f="$(range_file "$n")"
    measure "run, $n items, -q --no-store" "$BIN" "$f" -q --no-store
    per=$(awk -v s="$(seconds "$(cat "$TMP/last_wall")")" -v n="$n" 'BEGIN { printf "%.0f", s / n * 1e6 }')
    printf '%-44s %s µs per job\n' "" "$per"
    rm -rf "$ORCHESTRATE_STATE_DIR"
    measure "run, $n items, -q, with the store" "$BIN" "$f" -q
    per=$(awk -v s="$(seconds "$(cat "$TMP/last_wall")")" -v n="$n" 'BEGIN { printf "%.0f", s / n * 1e6 }')
    printf '%-44s %s µs per job\n' "" "$per"
done

echo "== the same $CMP_SIZE items elsewhere"
measure "seq 1 $CMP_SIZE | xargs -P2 -n1 true" sh -c "seq 1 $CMP_SIZE | xargs -P2 -n1 true"
per=$(awk -v s="$(seconds "$(cat "$TMP/last_wall")")" -v n="$CMP_SIZE" 'BEGIN { printf "%.0f", s / n * 1e6 }')
printf '%-44s %s µs per job\n' "" "$per"
if command -v parallel >/dev/null; then
    measure "seq 1 $CMP_SIZE | parallel -j2 true" sh -c "seq 1 $CMP_SIZE | parallel -j2 true"
    per=$(awk -v s="$(seconds "$(cat "$TMP/last_wall")")" -v n="$CMP_SIZE" 'BEGIN { printf "%.0f", s / n * 1e6 }')
    printf '%-44s %s µs per job\n' "" "$per"
fi
