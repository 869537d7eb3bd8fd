#!/usr/bin/env bash
# Side-by-side LLM serving benchmark through HTTP (OpenAI completions, streamed):
# modelbay vs llama-cpp-python's server, same GGUF (SmolLM2-135M-Instruct Q4_1), same thread
# count, one server at a time on the same machine as the load generator (bench/llm_load.py).
#
# Measures: single-stream decode tokens/s (256 tokens), median time to first token for a
# ~500-token prompt (a different prompt each run, so no server answers from a prefix cache), and
# aggregate generated tokens/s with 1, 4 and 8 concurrent streams (128 tokens each).
#
# Usage: bench/llm.sh [--threads N] [--only modelbay|llama-cpp-python]
#
# Environment:
#   MODELBAY_BIN  modelbay binary (default: $CARGO_TARGET_DIR or target, /release/modelbay;
#                 built with `cargo build --release` when missing)
#   BENCH_LLM_VENV  virtualenv for llama-cpp-python[server] and httpx
#                   (default .cache/bench-llm-venv; llama-cpp-python builds llama.cpp, ~4 min)
#
# Markdown results go to stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS=2
ONLY=""
while (($#)); do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

eval "$(scripts/fetch-models.sh)"
MODEL="$MODELBAY_SMOLLM2"
VENV="${BENCH_LLM_VENV:-$PWD/.cache/bench-llm-venv}"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import llama_cpp, httpx, uvicorn' 2>/dev/null; then
  echo "installing llama-cpp-python[server] into $VENV (builds llama.cpp)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'llama-cpp-python[server]==0.3.36' httpx
fi
BIN="${MODELBAY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/modelbay}"
[[ -x "$BIN" ]] || cargo build --release --locked -p modelbay-cli
RESULTS="$(mktemp -d)"
trap 'rm -rf "$RESULTS"; kill $(jobs -p) 2>/dev/null || true' EXIT

wait_for() { # url
  for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; return 1
}

if [[ -z "$ONLY" || "$ONLY" == modelbay ]]; then
  echo "== modelbay ($THREADS threads)" >&2
  DATA="$RESULTS/modelbay-data"
  "$BIN" serve --listen 127.0.0.1:18181 --data-dir "$DATA" --llm-threads "$THREADS" \
    --llm-max-sequences 8 --llm-context 2048 >"$RESULTS/modelbay.log" 2>&1 &
  SERVER=$!
  wait_for http://127.0.0.1:18181/v2/health/ready
  "$BIN" push chat "$MODEL" --server http://127.0.0.1:18181 >&2
  "$VENV/bin/python" bench/llm_load.py modelbay http://127.0.0.1:18181 chat --json "$RESULTS/modelbay.json" >&2
  kill -TERM $SERVER; wait $SERVER || true
fi

if [[ -z "$ONLY" || "$ONLY" == llama-cpp-python ]]; then
  echo "== llama-cpp-python ($THREADS threads)" >&2
  "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias chat --host 127.0.0.1 \
    --port 18182 --n_threads "$THREADS" --n_threads_batch "$THREADS" --n_ctx 2048 \
    --interrupt_requests False \
    >"$RESULTS/llama-cpp-python.log" 2>&1 &
  SERVER=$!
  wait_for http://127.0.0.1:18182/v1/models
  "$VENV/bin/python" bench/llm_load.py llama-cpp-python http://127.0.0.1:18182 chat \
    --json "$RESULTS/llama-cpp-python.json" >&2
  kill -TERM $SERVER; wait $SERVER || true
fi

"$VENV/bin/python" - "$RESULTS" "$THREADS" <<'PY'
import json, os, sys
results, threads = sys.argv[1], sys.argv[2]
rows = [json.load(open(os.path.join(results, f))) for f in ("modelbay.json", "llama-cpp-python.json")
        if os.path.exists(os.path.join(results, f))]
print(f"| server ({threads} threads) | decode tok/s (1 stream) | TTFT ~500-token prompt (ms) | aggregate tok/s, 1 stream | 4 streams | 8 streams |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['server']} | {r['decode_tok_s']:.0f} | {r['ttft_500_ms']:.0f} | {r['aggregate_tok_s_1']:.0f} | {r['aggregate_tok_s_4']:.0f} | {r['aggregate_tok_s_8']:.0f} |")
if len(rows) == 2:
    m, p = rows
    print(f"\nmodelbay / llama-cpp-python: decode {m['decode_tok_s']/p['decode_tok_s']:.2f}×, "
          f"TTFT {p['ttft_500_ms']/m['ttft_500_ms']:.2f}× faster, "
          f"8 streams {m['aggregate_tok_s_8']/p['aggregate_tok_s_8']:.2f}×")
PY
