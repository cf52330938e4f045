#!/usr/bin/env bash
# Fan-out that streams: peak RSS and wall time of `check` and of a run of a large
# `for_each: {range: ...}` of `true`, the time to the first job, and the per-job overhead,
# beside `seq 1 N | xargs -P2 -n1 true` and GNU parallel. Each figure is printed beside its
# goal (peak RSS < 64 MB; first job < 50 ms).
#
# Usage: bench/fanout.sh [BINARY]
#   SECTIONS     which parts run (default: "check first runs side interrupt show run7")
#   CHECK_SIZES  item counts for `check`          (default: "1000000 10000000")
#   RUN_SIZES    item counts for a run            (default: "100000 1000000")
#   SIDE_SIZE    items of the side-by-side hyperfine run of orchestrate and xargs
#                (default: 1000000); PARALLEL_SIZE the items GNU parallel gets there
#                (default: SIDE_SIZE; it takes about 10 ms a job)
#   INT_SIZE     items of a run interrupted once its first jobs run (default: 1000000); also
#                the items piped to a `--resume` of a fan-out over /dev/stdin (pipe-resume)
#   BEFORE_BIN   an older build to interrupt the same way, for comparison (optional)
#   RUN7_SECS    seconds a run of 10^7 runs before it is killed (default: 60)
# A run of 10^7 `true` takes hours on a small machine: add it to RUN_SIZES to measure it.
set -euo pipefail
BIN="$(realpath "${1:-target/release/orchestrate}")"
SECTIONS="${SECTIONS:-check first runs side interrupt show pipe-resume run7}"
on() { [[ " $SECTIONS " == *" $1 "* ]]; }
CHECK_SIZES="${CHECK_SIZES:-1000000 10000000}"
RUN_SIZES="${RUN_SIZES:-100000 1000000}"
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

if on check; then
echo "== check"
for n in $CHECK_SIZES; do
    measure "check, $n items" "$BIN" check "$(range_file "$n")"
done
fi

if on first; then
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
fi

if on runs; then
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

fi

SIDE_SIZE="${SIDE_SIZE:-1000000}"
PARALLEL_SIZE="${PARALLEL_SIZE:-$SIDE_SIZE}"
if on side; then
echo "== side by side (hyperfine, one run each, J=2): orchestrate $SIDE_SIZE, xargs $SIDE_SIZE, GNU parallel $PARALLEL_SIZE items of \`true\`"
command -v hyperfine >/dev/null || apt-get install -y hyperfine >/dev/null 2>&1
f="$(range_file "$SIDE_SIZE")"
rm -rf "$ORCHESTRATE_STATE_DIR"
cmds=("/usr/bin/time -f %M -o $TMP/rss.orch $BIN $f -q -j 2"
      "/usr/bin/time -f %M -o $TMP/rss.xargs sh -c 'seq 1 $SIDE_SIZE | xargs -P2 -n1 true'")
names=("orchestrate -j2 ($SIDE_SIZE)" "xargs -P2 -n1 ($SIDE_SIZE)")
if command -v parallel >/dev/null; then
    cmds+=("/usr/bin/time -f %M -o $TMP/rss.parallel sh -c 'seq 1 $PARALLEL_SIZE | parallel -j2 true'")
    names+=("GNU parallel -j2 ($PARALLEL_SIZE)")
fi
args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --runs 1 -i --export-json "$TMP/side.json" "${args[@]}" >/dev/null 2>&1 || true
for tool in orch xargs parallel; do
    [ -s "$TMP/rss.$tool" ] || continue
    case $tool in orch) n=$SIDE_SIZE; i=0 ;; xargs) n=$SIDE_SIZE; i=1 ;; parallel) n=$PARALLEL_SIZE; i=2 ;; esac
    wall=$(python3 -c "import json;print(round(json.load(open('$TMP/side.json'))['results'][$i]['mean'],1))")
    rss=$(awk '{ printf "%.1f", $1 / 1024 }' "$TMP/rss.$tool")
    per=$(awk -v s="$wall" -v n="$n" 'BEGIN { printf "%.0f", s / n * 1e6 }')
    verdict=ok; awk -v r="$rss" 'BEGIN { exit !(r < 64) }' || verdict=OVER
    printf '%-34s wall %8s s  %6s µs/job  peak RSS %7s MB  (goal < 64 MB: %s)\n' "${names[$i]}" "$wall" "$per" "$rss" "$verdict"
done
fi

# interrupted BIN LABEL: a run of INT_SIZE items whose first two jobs hold both slots gets
# SIGINT once they run; every other job is recorded as never started.
interrupted() {
    local bin="$1" label="$2" n="${INT_SIZE:-1000000}"
    printf 'jobs:\n  - name: t\n    shell: "test {item} -gt 2 || { echo x >> %s/started; sleep 60; }"\n    for_each: {range: [1, %s]}\n' "$TMP" "$n" > "$TMP/int.yaml"
    rm -f "$TMP/started"
    /usr/bin/time -f '%M %e' -o "$TMP/int.time" "$bin" "$TMP/int.yaml" -q -j 2 >/dev/null 2>&1 &
    local t=$!
    for _ in $(seq 1 3000); do [ -f "$TMP/started" ] && [ "$(wc -l < "$TMP/started")" -ge 2 ] && break; sleep 0.01; done
    kill -INT "$(pgrep -P "$t")"
    wait "$t" || true
    read -r kb secs < <(tail -1 "$TMP/int.time")
    local rss; rss=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
    local verdict=ok; awk -v r="$rss" 'BEGIN { exit !(r < 64) }' || verdict=OVER
    printf '%-44s %s s to record, peak RSS %7s MB  (goal < 64 MB: %s)\n' "$label, $n items" "$secs" "$rss" "$verdict"
}
if on interrupt; then
echo "== Ctrl-C once two jobs run: every other job recorded as cancelled"
if [ -n "${BEFORE_BIN:-}" ]; then
    rm -rf "$ORCHESTRATE_STATE_DIR"
    interrupted "$BEFORE_BIN" "interrupted (before: unbounded channel)"
fi
rm -rf "$ORCHESTRATE_STATE_DIR"
interrupted "$BIN" "interrupted (now: bounded channel)"
fi

if on show; then
echo "== show of the interrupted run's records"
run=$("$BIN" runs --json | head -1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
measure "show RUN ($(( ${INT_SIZE:-1000000} )) records)" "$BIN" show "$run"
measure "show RUN --json" "$BIN" show "$run" --json
fi

if on pipe-resume; then
echo "== --resume of a fan-out over a pipe, Ctrl-C once two jobs run"
n="${INT_SIZE:-1000000}"
rm -rf "$ORCHESTRATE_STATE_DIR"
printf 'jobs:\n  - name: t\n    shell: "test {item} -gt 3 || exit 0; echo x >> %s/started; sleep 60"\n    for_each: {file: /dev/stdin}\n' "$TMP" > "$TMP/pipe.yaml"
printf '1\n2\n3\n' | "$BIN" "$TMP/pipe.yaml" -q >/dev/null 2>&1
rm -f "$TMP/started"
seq 1 "$n" | /usr/bin/time -f '%M %e' -o "$TMP/pr.time" "$BIN" "$TMP/pipe.yaml" --resume last -q -j 2 >/dev/null 2>&1 &
t=$!
for _ in $(seq 1 3000); do [ -f "$TMP/started" ] && [ "$(wc -l < "$TMP/started")" -ge 2 ] && break; sleep 0.01; done
kill -INT "$(pgrep -P "$t" -x orchestrate)" 2>/dev/null || true
wait "$t" 2>/dev/null || true
read -r kb secs < <(tail -1 "$TMP/pr.time")
rss=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
verdict=ok; awk -v r="$rss" 'BEGIN { exit !(r < 64) }' || verdict=OVER
printf '%-44s %s s in all, peak RSS %7s MB  (goal < 64 MB: %s)\n' "--resume of a pipe of $n items" "$secs" "$rss" "$verdict"
fi

if on run7; then
secs="${RUN7_SECS:-60}"
echo "== run of 10^7 items, store on, killed after $secs s"
rm -rf "$ORCHESTRATE_STATE_DIR"
f="$(range_file 10000000)"
/usr/bin/time -f '%M' -o "$TMP/r7.time" "$BIN" "$f" -q -j 2 >/dev/null 2>&1 &
t=$!
sleep "$secs"
kill -KILL "$(pgrep -P "$t")" 2>/dev/null || true
wait "$t" 2>/dev/null || true
rss=$(tail -1 "$TMP/r7.time" | awk '{ printf "%.1f", $1 / 1024 }')
done_jobs=$("$BIN" runs --json | head -1 | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print(sum(r["counts"].values()))' 2>/dev/null || echo "?")
verdict=ok; awk -v r="$rss" 'BEGIN { exit !(r < 64) }' || verdict=OVER
printf '%-44s peak RSS %7s MB  (goal < 64 MB: %s), %s jobs recorded\n' "run of 10^7, killed after $secs s" "$rss" "$verdict" "$done_jobs"
fi
