#!/usr/bin/env bash
# Dynamic batching and metrics overhead, measured with wrk against the release binary.
#
# 1. Batching: v2 JSON inference of ONE row per request at concurrency 32 (wrk, 2 threads) on
#    the RandomForest and MLP breast-cancer fixtures, and on a wide MLP (bench/wide_mlp.py:
#    30 -> 1024 -> 1024 -> 2, whose one-row run reads 4 MB of weights, so the engine dominates),
#    with the model's batching settings
#    off, on with no queue delay (batches form while both sessions are busy), and on with a
#    1 ms delay. Same server process; only PUT /api/v1/models/{m}/batching changes between runs.
# 2. Metrics overhead: the MLP, batching off, at concurrency 1 and 32, with the server started
#    with --metrics true (default) and --metrics false (every recording call is a no-op and
#    the request middleware does not count).
#
# Usage: bench/batching.sh [--duration SECS] [--warmup SECS] [--rounds N]
#   MODELBAY_BIN  binary to run (default: an ONNX-only release build in /work/target-rel or
#                 $CARGO_TARGET_DIR, built when missing)
# Prints a markdown table on stdout; progress on stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
DURATION=10
WARMUP=3
ROUNDS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf '[bench] %s\n' "$*" >&2; }
command -v wrk >/dev/null || { log "wrk is missing (apt-get install wrk)"; exit 1; }
eval "$(scripts/fetch-models.sh)"

TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
BIN="${MODELBAY_BIN:-$TARGET/release/modelbay}"
if [[ ! -x "$BIN" ]]; then
  log "building the release binary (ONNX engine only)"
  cargo build --release -p modelbay-cli --no-default-features --features onnx >&2
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

start_server() {
  local metrics="$1"
  rm -rf "$WORK/data" && mkdir -p "$WORK/data"
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --metrics "$metrics" \
    >"$WORK/stdout" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    URL="$(sed -n 's/^modelbay listening on //p' "$WORK/stdout")"
    [[ -n "$URL" ]] && break
    sleep 0.1
  done
  [[ -n "$URL" ]] || { log "server did not start"; cat "$WORK/server.log" >&2; exit 1; }
  for model in rf mlp; do
    curl -sf -X POST --data-binary "@fixtures/breast_cancer_$model.onnx" \
      "$URL/api/v1/models/$model/versions" >/dev/null
  done
  curl -sf -X POST --data-binary "@$WORK/wide.onnx" "$URL/api/v1/models/wide/versions" >/dev/null
}

stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

"${MODELBAY_CACHE:-$REPO_ROOT/.cache}/fixtures-venv/bin/python" bench/wide_mlp.py "$WORK/wide.onnx"

# One row of the fixture's inputs, as a v2 JSON body.
python3 - "$WORK/body.json" <<'EOF'
import json, sys
case = json.load(open("fixtures/breast_cancer_rf.expected.json"))
row = case["inputs"][0]["data"][:30]  # flat, row-major: the first row
json.dump({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]},
          open(sys.argv[1], "w"))
EOF

set_batching() {
  curl -sf -X PUT -H 'content-type: application/json' -d "$2" \
    "$URL/api/v1/models/$1/batching" >/dev/null
}

# Prints "requests/s p50_ms p99_ms" for one wrk run (after a discarded warm-up).
measure() {
  local model="$1" connections="$2" threads=2
  ((connections < 2)) && threads=1
  local url="$URL/v2/models/$model/infer"
  BENCH_BODY="$WORK/body.json" wrk -t"$threads" -c"$connections" -d"${WARMUP}s" \
    -s bench/post.lua "$url" >/dev/null
  local out
  out="$(BENCH_BODY="$WORK/body.json" wrk -t"$threads" -c"$connections" -d"${DURATION}s" \
    -s bench/post.lua "$url" | grep BENCH_RESULT)"
  local requests duration p50 p99 errors
  requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")"
  duration="$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$out")"
  p50="$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$out")"
  p99="$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$out")"
  errors="$(sed -E 's/.*status_errors=([0-9]+).*/\1/' <<<"$out")"
  ((errors == 0)) || { log "$errors failed requests"; exit 1; }
  awk -v r="$requests" -v d="$duration" -v a="$p50" -v b="$p99" \
    'BEGIN { printf "%.0f | %.2f | %.2f", r / (d / 1e6), a / 1e3, b / 1e3 }'
}

# Totals from /metrics for a model: rows run, engine runs, and the engine's busy seconds (the
# compute histogram counts each request of a run, so its sum over count is time per run).
engine_totals() {
  curl -sf "$URL/metrics" | awk -v m="$1" '
    $0 ~ "^modelbay_batch_size_sum\\{model=\"" m "\"" { s = $2 }
    $0 ~ "^modelbay_batch_size_count\\{model=\"" m "\"" { c = $2 }
    $0 ~ "^modelbay_compute_duration_seconds_sum\\{model=\"" m "\"" { t = $2 }
    $0 ~ "^modelbay_compute_duration_seconds_count\\{model=\"" m "\"" { n = $2 }
    END { printf "%.0f %.0f %.9f %.0f", s, c, t, n }'
}

# Runs are interleaved over ROUNDS rounds (the machine's speed drifts); the table gives the
# median requests/s with the range, and the p50/p99 of the median run.
summarise() {
  sort -n | awk '{ r[NR] = $1; a[NR] = $2; b[NR] = $3 }
    END { m = int((NR + 1) / 2); printf "%s (%s–%s) | %s | %s", r[m], r[1], r[NR], a[m], b[m] }'
}
declare -A RUNS MEANS

log "batching runs (concurrency 32, one row per request, $ROUNDS rounds)"
start_server true
SETTINGS=("off" "on, no delay" "on, 1 ms delay")
for round in $(seq "$ROUNDS"); do
  for model in rf mlp wide; do
    for setting in "${SETTINGS[@]}"; do
      case "$setting" in
        off) set_batching "$model" '{"max_batch_size": 0}' ;;
        "on, no delay") set_batching "$model" '{"max_batch_size": 32}' ;;
        *) set_batching "$model" '{"max_batch_size": 32, "max_queue_delay_microseconds": 1000}' ;;
      esac
      read -r rows0 runs0 busy0 obs0 <<<"$(engine_totals "$model")"
      result="$(measure "$model" 32)"
      read -r rows1 runs1 busy1 obs1 <<<"$(engine_totals "$model")"
      # Warm-up and measured runs together: rows per run, and engine µs per run (each run's
      # compute time is observed once per request in it).
      mean="$(awk -v r="$((rows1 - rows0))" -v n="$((runs1 - runs0))" -v b0="$busy0" -v b1="$busy1" \
        -v o="$((obs1 - obs0))" 'BEGIN { printf "%.1f | %.0f", r / n, (b1 - b0) / o * 1e6 }')"
      log "round $round, $model $setting: $result | $mean (rows/run | µs/run)"
      RUNS["$model/$setting"]+="$(tr -d '|' <<<"$result")"$'\n'
      MEANS["$model/$setting"]="$mean"
    done
  done
done
stop_server
echo "| model | batching | requests/s, median (range) | p50 ms | p99 ms | rows per engine run | engine µs per run (request-weighted) |"
echo "|---|---|---|---|---|---|---|"
for model in rf mlp wide; do
  for setting in "${SETTINGS[@]}"; do
    echo "| $model | $setting | $(printf '%s' "${RUNS[$model/$setting]}" | summarise) | ${MEANS[$model/$setting]} |"
  done
done

log "metrics on and off ($ROUNDS rounds)"
declare -A OVERHEAD
for round in $(seq "$ROUNDS"); do
  for metrics in true false; do
    start_server "$metrics"
    for connections in 1 32; do
      result="$(measure mlp "$connections")"
      log "round $round, metrics $metrics, $connections connections: $result"
      OVERHEAD["$metrics/$connections"]+="$(tr -d '|' <<<"$result")"$'\n'
    done
    stop_server
  done
done
echo
echo "| metrics | concurrency | requests/s, median (range) | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for metrics in true false; do
  for connections in 1 32; do
    echo "| $metrics | $connections | $(printf '%s' "${OVERHEAD[$metrics/$connections]}" | summarise) |"
  done
done
