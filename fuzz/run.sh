#!/usr/bin/env bash
# Runs one fuzz target for SECONDS (default 600) with AddressSanitizer, on the corpus in
# fuzz/corpus/TARGET; crashing inputs land in fuzz/artifacts/TARGET. Prints the executions
# and the final corpus size. Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a
# nightly toolchain (or RUSTC_BOOTSTRAP=1 on stable).
#
# Usage: fuzz/run.sh TARGET [SECONDS] [JOBS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
TARGET="${1:?usage: fuzz/run.sh TARGET [SECONDS]}"
SECONDS_TO_RUN="${2:-600}"
TOOLCHAIN=+nightly
rustup run nightly true 2>/dev/null || { TOOLCHAIN=""; export RUSTC_BOOTSTRAP=1; }
mkdir -p "corpus/$TARGET" "artifacts/$TARGET"
LOG="$(mktemp)"
# Bounded memory is part of what is checked: an allocation over 512 MiB, or 2 GiB resident,
# is a finding.
cargo $TOOLCHAIN fuzz run "$TARGET" "corpus/$TARGET" -- \
  -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 \
  -timeout=10 -print_final_stats=1 2>&1 | tee "$LOG" | grep -E "^(#[0-9]+.*(pulse|DONE)|==|SUMMARY|stat::number_of_executed_units|artifact_prefix)" || true
echo "target=$TARGET seconds=$SECONDS_TO_RUN executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG") corpus=$(ls "corpus/$TARGET" | wc -l) artifacts=$(ls "artifacts/$TARGET" | wc -l)"
