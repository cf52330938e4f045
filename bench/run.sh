#!/usr/bin/env bash
# Benchmarks orchestrate against a spawn-and-wait floor, xargs -P, GNU parallel and rust-parallel
# with hyperfine, and prints a markdown table (median wall time, per-job overhead, peak RSS).
#
# Usage: bench/run.sh [--quick] [--runs N]
#   --quick   smaller workloads and 2 runs each: a smoke test of the script
#   --runs N  hyperfine runs per command (default: hyperfine's own, at least 10 runs / 3 s)
#
# Peak RSS is /usr/bin/time's %M in one extra run per tool: the largest single process of the
# tool's process tree (not a sum), in MiB. Needs root for apt-get when tools are missing.
set -euo pipefail

QUICK=0
RUNS=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --runs) RUNS="$2"; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "bench: $*" >&2; }

# ---- tools ---------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || return 1
    apt-get install -y "$@" >/dev/null 2>&1 && return 0
    if [[ $APT_UPDATED -eq 0 ]]; then
        APT_UPDATED=1
        apt-get update >/dev/null 2>&1 || true
        apt-get install -y "$@" >/dev/null 2>&1 && return 0
    fi
    return 1
}
need() { # need COMMAND PACKAGE: install PACKAGE if COMMAND is missing; fails if still missing
    command -v "$1" >/dev/null && return 0
    log "installing $2"
    apt_install "$2" || true
    command -v "$1" >/dev/null
}

need hyperfine hyperfine || { log "hyperfine is required and could not be installed"; exit 1; }
need python3 python3 || { log "python3 is required and could not be installed"; exit 1; }
[[ -x /usr/bin/time ]] || apt_install time || true
HAVE_TIME=0; [[ -x /usr/bin/time ]] && HAVE_TIME=1
[[ $HAVE_TIME -eq 1 ]] || log "/usr/bin/time unavailable: no peak RSS column"
HAVE_PARALLEL=1
if ! need parallel parallel || ! parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
    log "skipping GNU parallel: not installable"; HAVE_PARALLEL=0
fi
HAVE_RP=1
if ! command -v rust-parallel >/dev/null; then
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! command -v rust-parallel >/dev/null; then
        log "installing rust-parallel (cargo install)"
        cargo install --quiet rust-parallel >/dev/null 2>&1 || true
    fi
    command -v rust-parallel >/dev/null || { log "skipping rust-parallel: not installable"; HAVE_RP=0; }
fi

log "building orchestrate (release)"
(cd "$ROOT" && cargo build --release --quiet)
ORCH="$ROOT/target/release/orchestrate"
TRUE="$(type -P true)"   # resolved once, by path: `command -v true` names the builtin
HEAD="$(type -P head)"
SLEEP="$(type -P sleep)"
case "$TRUE$HEAD$SLEEP" in /*/*/*) ;; *) log "need absolute paths for true, head, sleep"; exit 1 ;; esac

TMP="$(mktemp -d "${TMPDIR:-/tmp}/orchestrate-bench.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
export ORCHESTRATE_STATE_DIR="$TMP/state"

# ---- floor: N children, J in flight, stdout+stderr on one pipe drained and discarded --------
cat > "$TMP/floor.rs" <<'EOF'
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (n, j): (usize, usize) = (a[1].parse().unwrap(), a[2].parse().unwrap());
    let (next, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..j {
            s.spawn(|| {
                let mut buf = vec![0u8; 64 * 1024];
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let (mut r, w) = std::io::pipe().unwrap();
                    let w2 = w.try_clone().unwrap();
                    let child = Command::new(&a[3]).args(&a[4..]).stdin(Stdio::null())
                        .stdout(w).stderr(w2).spawn();
                    let ok = match child {
                        Ok(mut c) => {
                            while r.read(&mut buf).map(|k| k > 0).unwrap_or(false) {}
                            c.wait().map(|st| st.success()).unwrap_or(false)
                        }
                        Err(_) => false,
                    };
                    if !ok { failed.fetch_add(1, Ordering::Relaxed); }
                }
            });
        }
    });
    std::process::exit((failed.load(Ordering::Relaxed) > 0) as i32);
}
EOF
rustc --edition 2021 -O -o "$TMP/floor" "$TMP/floor.rs"
FLOOR="$TMP/floor"

# ---- workloads ----------------------------------------------------------------------------
if [[ $QUICK -eq 1 ]]; then
    NA=200; NB=20; NC=16; ND=1000; EBYTES=$((64 << 20)); RUNS="${RUNS:-2}"; WARMUP=0
else
    NA=2000; NB=200; NC=40; ND=10000; EBYTES=$((1 << 30)); WARMUP=1
fi
MIB=1048576
ROWS="$TMP/rows.tsv"   # workload  tool  n  median_s  ideal_s  rss_kib
: > "$ROWS"
WN=0

repeat() { awk -v n="$1" -v s="$2" 'BEGIN { for (i = 0; i < n; i++) print s }'; }

# make_inputs DIR N J COMMAND...: job file for orchestrate, lines for xargs/parallel, commands
# for rust-parallel, all the same command.
make_inputs() {
    local dir="$1" n="$2" j="$3"; shift 3
    local cmd="$*"
    mkdir -p "$dir"
    { echo "concurrency: $j"; echo "jobs:"; repeat "$n" "  - $cmd"; } > "$dir/jobs.yaml"
    seq "$n" > "$dir/lines"
    repeat "$n" "$cmd" > "$dir/cmds"
}

# bench WORKLOAD N J IDEAL_S PEERS(0|1) COMMAND...: one hyperfine invocation over the tools.
bench() {
    local w="$1" n="$2" j="$3" ideal="$4" peers="$5"; shift 5
    WN=$((WN + 1))
    local cmd="$*" dir="$TMP/w$WN"
    make_inputs "$dir" "$n" "$j" "$@"
    local names=() cmds=() preps=()
    names+=("orchestrate"); cmds+=("$ORCH -q --progress never --color never $dir/jobs.yaml")
    preps+=("rm -rf $ORCHESTRATE_STATE_DIR")
    names+=("floor (Rust std, drains pipe)"); cmds+=("$FLOOR $n $j $cmd"); preps+=("true")
    if [[ $peers -eq 1 ]]; then
        names+=("xargs -P $j (no capture)"); cmds+=("xargs -a $dir/lines -P $j -I{} $cmd")
        preps+=("true")
        if [[ $HAVE_PARALLEL -eq 1 ]]; then
            names+=("GNU parallel -j $j"); cmds+=("parallel --will-cite -j $j -N0 -a $dir/lines $cmd")
            preps+=("true")
        fi
        if [[ $HAVE_RP -eq 1 ]]; then
            names+=("rust-parallel -j $j"); cmds+=("rust-parallel -j $j -i $dir/cmds"); preps+=("true")
        fi
    fi
    local args=(--style basic --warmup "$WARMUP" --export-json "$dir/result.json")
    [[ -n "$RUNS" ]] && args+=(--runs "$RUNS")
    local i
    for i in "${!cmds[@]}"; do args+=(--prepare "${preps[$i]}" -n "${names[$i]}" "${cmds[$i]}"); done
    log "workload $w: $n x '$cmd' at J=$j"
    if ! hyperfine "${args[@]}" >&2; then
        log "hyperfine failed for workload $w"; return 0
    fi
    for i in "${!cmds[@]}"; do
        local rss=""
        if [[ $HAVE_TIME -eq 1 ]]; then
            sh -c "${preps[$i]}"
            /usr/bin/time -f %M -o "$dir/rss" sh -c "exec ${cmds[$i]}" >/dev/null 2>&1 && rss="$(tail -n 1 "$dir/rss")"
        fi
        local med
        med="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"])' "$dir/result.json" "$i")"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "${names[$i]}" "$n" "$med" "$ideal" "$rss" >> "$ROWS"
    done
    rm -rf "$ORCHESTRATE_STATE_DIR" "$dir"
}

bench "(a) $NA x true, J=2" "$NA" 2 0 1 "$TRUE"
bench "(b) $NB x 1 MiB stdout, J=2" "$NB" 2 0 1 "$HEAD" -c "$MIB" /dev/zero
bench "(c) $NC x sleep 0.25, J=8" "$NC" 8 "$(python3 -c "print($NC / 8 * 0.25)")" 1 "$SLEEP" 0.25
bench "(d) $ND x true, J=2" "$ND" 2 0 0 "$TRUE"
bench "(e) 1 x $((EBYTES / MIB)) MiB stdout" 1 1 0 1 "$HEAD" -c "$EBYTES" /dev/zero

log "orchestrate --version startup"
hyperfine --style basic -N --warmup 5 --min-runs 100 --export-json "$TMP/version.json" \
    "$ORCH --version" >&2

# ---- table --------------------------------------------------------------------------------
python3 - "$ROWS" "$TMP/version.json" <<'EOF'
import json, sys
print("| workload | tool | median wall | per job (or ratio to ideal) | peak RSS |")
print("|---|---|---:|---:|---:|")
for line in open(sys.argv[1]):
    w, tool, n, med, ideal, rss = line.rstrip("\n").split("\t")
    n, med, ideal = int(n), float(med), float(ideal)
    wall = f"{med:.3f} s" if med >= 1 else f"{med * 1e3:.1f} ms"
    per = f"{med / ideal:.3f}x of {ideal:g} s" if ideal > 0 else f"{med / n * 1e6:,.0f} µs"
    mem = f"{int(rss) / 1024:.1f} MiB" if rss else "n/a"
    print(f"| {w} | {tool} | {wall} | {per} | {mem} |")
v = json.load(open(sys.argv[2]))["results"][0]
print(f"\n`orchestrate --version`: median {v['median'] * 1e3:.2f} ms "
      f"(mean {v['mean'] * 1e3:.2f} ± {v['stddev'] * 1e3:.2f} ms)")
EOF
