#!/usr/bin/env bash
# gRPC vs HTTP JSON vs HTTP binary, modelbay beside Seldon MLServer, at concurrency 1, 8, 32.
#
# Model: breast_cancer StandardScaler + LogisticRegression (modelbay: fixtures/breast_cancer_lr.onnx;
# MLServer: the same sklearn pipeline retrained identically, as in bench/v2-http.sh). Request: the
# first 4 rows of fixtures/breast_cancer_lr.expected.json, input "input" FP32 [4, 30]:
#   - HTTP JSON:   wrk + bench/post.lua, POST /v2/models/breast-cancer/infer
#   - HTTP binary: wrk + bench/post_binary.lua, the binary tensor extension (modelbay only:
#                  MLServer does not implement it)
#   - gRPC:        the Rust load generator crates/modelbay-cli/examples/grpc_load.rs, ModelInfer
#                  with raw_input_contents, one HTTP/2 connection per concurrent client
# One server runs at a time; the load generators share the 2 cores with it.
#
# Usage: bench/grpc.sh [--duration SECS] [--warmup SECS]
#   MODELBAY_BIN  modelbay binary (default: an ONNX-only release build, built when missing)
#   BENCH_VENV    MLServer virtualenv (default .cache/bench-venv; bench/v2-http.sh creates it)
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
VENV="${BENCH_VENV:-$REPO_ROOT/.cache/bench-venv}"
EXPECTED=fixtures/breast_cancer_lr.expected.json
ROWS=4
if [[ ! -x "$BIN" ]]; then
  log "building the release binary (ONNX engine only)"
  cargo build --release -p modelbay-cli --no-default-features --features onnx >&2
fi
log "building the gRPC load generator"
cargo build --release -p modelbay-cli --no-default-features --features onnx --example grpc_load >&2
LOAD="$TARGET/release/examples/grpc_load"
[[ -x "$VENV/bin/mlserver" ]] || { log "no MLServer venv: run bench/v2-http.sh --only mlserver once"; exit 1; }

WORK="$(mktemp -d)"
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

python3 bench/v2_payload.py body "$EXPECTED" "$ROWS" >"$WORK/body.json"
HEADER_LENGTH="$(python3 - "$EXPECTED" "$ROWS" "$WORK/body.bin" <<'EOF'
import json, struct, sys
case, rows, out = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
data = case["inputs"][0]["data"][: rows * 30]
header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows, 30],
                                 "parameters": {"binary_data_size": len(data) * 4}}],
                     "outputs": [{"name": "label", "parameters": {"binary_data": True}},
                                 {"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
open(out, "wb").write(header + struct.pack(f"<{len(data)}f", *data))
print(len(header))
EOF
)"

wait_ready() {
  for _ in $(seq 600); do
    curl -sf "$1/v2/models/breast-cancer/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "server not ready at $1"; exit 1
}

# Prints "req/s | p50 ms | p99 ms" of one run after a discarded warm-up.
result() {
  local line="$1" r d a b e
  r="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")"
  d="$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$line")"
  a="$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")"
  b="$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")"
  e="$(sed -E 's/.*(status_errors|errors)=([0-9]+).*/\2/' <<<"$line")"
  ((e == 0)) || { log "$e failed requests: $line"; exit 1; }
  awk -v r="$r" -v d="$d" -v a="$a" -v b="$b" 'BEGIN { printf "%.0f | %.2f | %.2f", r / (d / 1e6), a / 1e3, b / 1e3 }'
}

wrk_run() { # SCRIPT URL CONNECTIONS SECONDS
  local threads=2
  (($3 < 2)) && threads=1
  BENCH_BODY="$BODY" BENCH_HEADER_LENGTH="$HEADER_LENGTH" wrk -t"$threads" -c"$3" -d"$4s" \
    -s "$1" "$2" | grep BENCH_RESULT
}

measure() { # PROTOCOL CONNECTIONS
  local line
  case "$1" in
    json | binary)
      local script=bench/post.lua
      BODY="$WORK/body.json"
      if [[ "$1" == binary ]]; then script=bench/post_binary.lua; BODY="$WORK/body.bin"; fi
      wrk_run "$script" "$HTTP/v2/models/breast-cancer/infer" "$2" "$WARMUP" >/dev/null
      line="$(wrk_run "$script" "$HTTP/v2/models/breast-cancer/infer" "$2" "$DURATION")" ;;
    grpc)
      "$LOAD" "$GRPC" breast-cancer "$2" "$WARMUP" "$EXPECTED" "$ROWS" >/dev/null
      line="$("$LOAD" "$GRPC" breast-cancer "$2" "$DURATION" "$EXPECTED" "$ROWS")" ;;
  esac
  result "$line"
}

echo "| server | protocol | concurrency | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"

mkdir -p "$WORK/data"
"$BIN" serve --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 --data-dir "$WORK/data" \
  >"$WORK/modelbay.out" 2>"$WORK/modelbay.log" &
PID=$!
for _ in $(seq 100); do
  HTTP="$(sed -n 's/^modelbay listening on //p' "$WORK/modelbay.out")"
  [[ -n "$HTTP" ]] && break
  sleep 0.1
done
GRPC="http://$(sed -n 's/^modelbay gRPC listening on //p' "$WORK/modelbay.out")"
curl -sf --data-binary @fixtures/breast_cancer_lr.onnx "$HTTP/api/v1/models/breast-cancer/versions" >/dev/null
wait_ready "$HTTP"
for protocol in json binary grpc; do
  for c in 1 8 32; do
    r="$(measure "$protocol" "$c")"
    log "modelbay $protocol c=$c: $r"
    echo "| modelbay | $protocol | $c | $r |"
  done
done
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""

HTTP_PORT=18181; GRPC_PORT=18182; METRICS_PORT=18183
"$VENV/bin/python" bench/mlserver_model.py "$WORK/mlserver" "$HTTP_PORT" "$GRPC_PORT" 1 off "$METRICS_PORT" >&2
(cd "$WORK/mlserver" && exec "$VENV/bin/mlserver" start .) >"$WORK/mlserver.log" 2>&1 &
PID=$!
HTTP="http://127.0.0.1:$HTTP_PORT"
GRPC="http://127.0.0.1:$GRPC_PORT"
wait_ready "$HTTP"
for protocol in json grpc; do
  for c in 1 8 32; do
    r="$(measure "$protocol" "$c")"
    log "mlserver $protocol c=$c: $r"
    echo "| MLServer | $protocol | $c | $r |"
  done
done
