#!/usr/bin/env bash
# Dynamic batching and metrics overhead, measured with wrk against the release binary.
#
# 1. Batching: v2 JSON inference of ONE row per request at concurrency 32 (wrk, 2 threads) on
#    the RandomForest and MLP breast-cancer fixtures, with the model's batching settings
#    off, on with no queue delay (batches form while both sessions are busy), and on with a
#    1 ms delay. Same server process; only PUT /api/v1/models/{m}/batching changes between runs.
# 2. Metrics overhead: the MLP, batching off, at concurrency 1 and 32, with the server started
#    with --metrics true (default) and --metrics false (every recording call is a no-op and
#    the request middleware does not count).
#
# Usage: bench/batching.sh [--duration SECS] [--warmup SECS]
#   MODELBAY_BIN  binary to run (default: an ONNX-only release build in /work/target-rel or
#                 $CARGO_TARGET_DIR, built when missing)
# Prints a markdown table on stdout; progress on stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
DURATION=10
WARMUP=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
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
}

stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

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

# Mean rows per engine run since the last call, from /metrics.
batch_mean() {
  curl -sf "$URL/metrics" | awk -v m="$1" '
    $0 ~ "^modelbay_batch_size_sum\\{model=\"" m "\"" { s = $2 }
    $0 ~ "^modelbay_batch_size_count\\{model=\"" m "\"" { c = $2 }
    END { printf "%.1f %.0f %.0f", (c > 0 ? s / c : 0), s, c }'
}

echo "| model | batching | requests/s | p50 ms | p99 ms | mean rows per run |"
echo "|---|---|---|---|---|---|"
log "batching runs (concurrency 32, one row per request)"
start_server true
for model in rf mlp; do
  for setting in off "on, no delay" "on, 1 ms delay"; do
    case "$setting" in
      off) set_batching "$model" '{"max_batch_size": 0}' ;;
      "on, no delay") set_batching "$model" '{"max_batch_size": 32}' ;;
      *) set_batching "$model" '{"max_batch_size": 32, "max_queue_delay_microseconds": 1000}' ;;
    esac
    read -r _ before_sum before_count <<<"$(batch_mean "$model")"
    result="$(measure "$model" 32)"
    read -r _ after_sum after_count <<<"$(batch_mean "$model")"
    # Warm-up and measured runs together.
    mean="$(awk -v a="$before_sum" -v b="$after_sum" -v c="$before_count" -v d="$after_count" \
      'BEGIN { printf "%.1f", (b - a) / (d - c) }')"
    log "$model $setting: $result"
    echo "| $model | $setting | $result | $mean |"
  done
done
stop_server

echo
echo "| metrics | concurrency | requests/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for metrics in true false; do
  log "metrics $metrics"
  start_server "$metrics"
  for connections in 1 32; do
    result="$(measure mlp "$connections")"
    log "metrics $metrics, $connections connections: $result"
    echo "| $metrics | $connections | $result |"
  done
  stop_server
done
