#!/usr/bin/env bash
# Fuzzes job-file loading and planning (fuzz/fuzz_targets/plan.rs) with cargo fuzz (libFuzzer).
#   fuzz/run.sh [SECONDS]        default 300
# Seeds: the bad-input corpus and the example job files. Findings land in fuzz/artifacts/plan/;
# add each one to tests/corpus/bad/ once fixed. On a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo fuzz use the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
mkdir -p fuzz/corpus/plan
cp tests/corpus/bad/*.yaml jobs/*.yaml fuzz/corpus/plan/
RUSTC_BOOTSTRAP=1 cargo fuzz run plan fuzz/corpus/plan -- -max_total_time="$secs" -max_len=4096 -timeout=10
