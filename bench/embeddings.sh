#!/usr/bin/env bash
# Embedding throughput, side by side in one run on the same machine: modelbay's /v1/embeddings
# through HTTP with both engines (ONNX Runtime on the folder with an ONNX export, candle on the
# safetensors folder) and Python `onnxruntime` in-process on the same ONNX graph (what a Python
# user gets, plus the graph alone: the in-process ceiling). Also measures the machine's float32
# matmul throughput, the compute limit the figures are read against.
#
# Usage: bench/embeddings.sh [--threads N]
#
# Environment:
#   MODELBAY_BIN  modelbay binary (default: $CARGO_TARGET_DIR or target, /release/modelbay;
#                 built with `cargo build --release` when missing)
#
# Uses the fixtures virtualenv of scripts/fetch-models.sh (numpy, onnx, onnxruntime,
# tokenizers). Markdown results go to stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS=2
while (($#)); do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

eval "$(scripts/fetch-models.sh)"
CACHE="${MODELBAY_CACHE:-$PWD/.cache}"
PY="$CACHE/fixtures-venv/bin/python"
BIN="${MODELBAY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/modelbay}"
[[ -x "$BIN" ]] || cargo build --release --locked -p modelbay-cli
RESULTS="$(mktemp -d)"
trap 'rm -rf "$RESULTS"; kill $(jobs -p) 2>/dev/null || true' EXIT

echo "== matmul throughput" >&2
"$PY" bench/embed_load.py matmul 1 >"$RESULTS/matmul-1.json"
"$PY" bench/embed_load.py matmul "$THREADS" >"$RESULTS/matmul-n.json"

echo "== Python onnxruntime in-process ($THREADS threads)" >&2
"$PY" bench/embed_load.py python "$MODELBAY_MINILM_ONNX" "$THREADS" >"$RESULTS/python.json"

echo "== modelbay ($THREADS threads per batch)" >&2
"$BIN" serve --listen 127.0.0.1:18183 --data-dir "$RESULTS/data" --embed-threads "$THREADS" \
  >"$RESULTS/modelbay.log" 2>&1 &
SERVER=$!
for _ in $(seq 600); do curl -sf http://127.0.0.1:18183/v2/health/ready >/dev/null && break; sleep 0.1; done
"$BIN" push minilm-onnx "$MODELBAY_MINILM_ONNX" --server http://127.0.0.1:18183 >&2
"$BIN" push minilm-candle "$MODELBAY_MINILM" --server http://127.0.0.1:18183 >&2
"$PY" bench/embed_load.py http http://127.0.0.1:18183 minilm-onnx >"$RESULTS/onnx.json"
"$PY" bench/embed_load.py http http://127.0.0.1:18183 minilm-candle >"$RESULTS/candle.json"
kill -TERM $SERVER; wait $SERVER || true

"$PY" - "$RESULTS" "$THREADS" <<'PY'
import json, os, sys
results, threads = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(os.path.join(results, name)))
one, many = load("matmul-1.json"), load("matmul-n.json")
python, onnx, candle = load("python.json"), load("onnx.json"), load("candle.json")
print(f"float32 matmul (ONNX Runtime, 2048³): {one['gflops']:.0f} GFLOP/s on 1 thread, "
      f"{many['gflops']:.0f} GFLOP/s on {threads}.\n")
print(f"| all-MiniLM-L6-v2, {threads} threads | batch 1 (sentences/s) | batch 32 (sentences/s) | 8 clients × 1 sentence |")
print("|---|---|---|---|")
print(f"| modelbay HTTP, ONNX Runtime | {onnx['batch_1']:.0f} | {onnx['batch_32']:.0f} | {onnx['clients_8_batch_1']:.0f} |")
print(f"| modelbay HTTP, candle | {candle['batch_1']:.0f} | {candle['batch_32']:.0f} | {candle['clients_8_batch_1']:.0f} |")
print(f"| Python onnxruntime in-process (tokenize + run + pool) | {python['batch_1']:.0f} | {python['batch_32']:.0f} | – |")
print(f"| ONNX Runtime graph alone, in-process (pre-tokenized) | – | {python['raw_batch_32']:.0f} | – |")
ratio = onnx["batch_32"] / python["raw_batch_32"]
print(f"\nmodelbay HTTP (ONNX Runtime) at batch 32 = {ratio:.1%} of the graph alone in-process "
      f"({(1 - ratio):.1%} below it; target: within 15%).")
PY
