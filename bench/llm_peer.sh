#!/usr/bin/env bash
# Side-by-side LLM serving benchmark through HTTP (OpenAI API): modelbay vs llama.cpp's own
# `llama-server`, same GGUF (SmolLM2-135M-Instruct Q4_1), same thread count, 8 sequences of
# 2,048 tokens each, one server at a time on the same machine as the load generator
# (bench/llm_peer_load.py, which documents each figure).
#
# Measures, for each server:
#   1. single-stream decode tokens/s (a streamed 256-token completion, temperature 0);
#   2. aggregate tokens/s of 8 concurrent 128-token streams;
#   3. median time to first token of a ~500-token prompt that differs at its start (no cache hit);
#   4. time to first token of a ~1,000-token chat prompt: first time (miss) vs the same prompt
#      again (prefix-cache hit), median of 3 each, and their ratio;
#   5. chat decode tokens/s with response_format json_schema (grammar-constrained) vs free,
#      and constrained as % of free.
#
# llama-server is built from the llama.cpp tree vendored in the llama-cpp-python sdist on PyPI
# (pinned below), once, and cached in $LLAMA_SERVER_DIR. It runs with -c (8 × 2048) -np 8 and
# its default prompt caching (slot reuse, cache_prompt).
#
# Usage: bench/llm_peer.sh [--threads N] [--only modelbay|llama-server]
#
# Environment:
#   MODELBAY_BIN      modelbay binary (default: ${CARGO_TARGET_DIR:-target}/release/modelbay;
#                     built with `cargo build --release` when missing)
#   MODELBAY_CACHE    model cache for scripts/fetch-models.sh
#   LLAMA_SERVER_DIR  where the llama-server binary is built and kept
#                     (default: $HOME/.cache/modelbay-ci/llama-server)
#   BENCH_PEER_VENV   virtualenv with httpx (default: $HOME/.cache/modelbay-ci/bench-peer-venv)
#
# Markdown results go to stdout; progress goes to stderr. Both servers are stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LCP_VERSION="0.3.36"  # llama-cpp-python sdist whose vendor/llama.cpp is built
THREADS=2
SLOTS=8
SLOT_CONTEXT=2048
ONLY=""
while (($#)); do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { printf '[llm_peer] %s\n' "$*" >&2; }

eval "$(scripts/fetch-models.sh)"
MODEL="$MODELBAY_SMOLLM2"

VENV="${BENCH_PEER_VENV:-$HOME/.cache/modelbay-ci/bench-peer-venv}"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import httpx' 2>/dev/null; then
  log "creating $VENV with httpx"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet httpx
fi
PY="$VENV/bin/python"

BIN="${MODELBAY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/modelbay}"
if [[ "$ONLY" != llama-server && ! -x "$BIN" ]]; then
  log "building modelbay (release)"
  cargo build --release --locked -p modelbay-cli
fi

LLAMA_SERVER_DIR="${LLAMA_SERVER_DIR:-$HOME/.cache/modelbay-ci/llama-server}"
LLAMA_SERVER="$LLAMA_SERVER_DIR/llama-cpp-python-$LCP_VERSION/llama-server"
build_llama_server() {
  local src="$LLAMA_SERVER_DIR/src" tree
  log "building llama-server from llama-cpp-python==$LCP_VERSION's vendor/llama.cpp (~5-10 min)"
  rm -rf "$src"
  mkdir -p "$src"
  python3 -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$LCP_VERSION" -d "$src"
  tar -xzf "$src/llama_cpp_python-$LCP_VERSION.tar.gz" -C "$src"
  tree="$src/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp"
  # Static, CPU-only, no web UI download, no HTTPS; LLAMA_CURL is only a deprecated no-op here.
  cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$tree/build" --target llama-server -j "$(nproc)" >&2
  mkdir -p "$(dirname "$LLAMA_SERVER")"
  cp "$tree/build/bin/llama-server" "$LLAMA_SERVER.tmp"
  mv "$LLAMA_SERVER.tmp" "$LLAMA_SERVER"
  rm -rf "$src"
}
if [[ "$ONLY" != modelbay && ! -x "$LLAMA_SERVER" ]]; then build_llama_server; fi

RESULTS="$(mktemp -d)"
SERVER=""
cleanup() {
  if [[ -n "$SERVER" ]]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$RESULTS"
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # url
  for _ in $(seq 1200); do
    curl -sf "$1" >/dev/null && return 0
    kill -0 "$SERVER" 2>/dev/null || { log "server exited while starting"; return 1; }
    sleep 0.1
  done
  log "server at $1 did not come up"; return 1
}
stop_server() { kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" || true; SERVER=""; }

if [[ -z "$ONLY" || "$ONLY" == modelbay ]]; then
  PORT="$(free_port)"; GRPC_PORT="$(free_port)"
  log "== modelbay ($THREADS threads) on port $PORT"
  "$BIN" serve --listen "127.0.0.1:$PORT" --grpc-listen "127.0.0.1:$GRPC_PORT" \
    --data-dir "$RESULTS/modelbay-data" --auth off --llm-threads "$THREADS" \
    --llm-max-sequences "$SLOTS" --llm-context "$SLOT_CONTEXT" >"$RESULTS/modelbay.log" 2>&1 &
  SERVER=$!
  wait_for "http://127.0.0.1:$PORT/v2/health/ready" || { tail -20 "$RESULTS/modelbay.log" >&2; exit 1; }
  "$BIN" push chat "$MODEL" --server "http://127.0.0.1:$PORT" >&2
  "$PY" bench/llm_peer_load.py modelbay "http://127.0.0.1:$PORT" chat \
    --json "$RESULTS/modelbay.json" >/dev/null \
    || { tail -20 "$RESULTS/modelbay.log" >&2; exit 1; }
  stop_server
fi

if [[ -z "$ONLY" || "$ONLY" == llama-server ]]; then
  PORT="$(free_port)"
  log "== llama-server ($THREADS threads) on port $PORT"
  "$LLAMA_SERVER" -m "$MODEL" --alias chat -t "$THREADS" -tb "$THREADS" \
    -c $((SLOTS * SLOT_CONTEXT)) -np "$SLOTS" --host 127.0.0.1 --port "$PORT" \
    >"$RESULTS/llama-server.log" 2>&1 &
  SERVER=$!
  wait_for "http://127.0.0.1:$PORT/health" || { tail -20 "$RESULTS/llama-server.log" >&2; exit 1; }
  "$PY" bench/llm_peer_load.py llama-server "http://127.0.0.1:$PORT" chat \
    --json "$RESULTS/llama-server.json" >/dev/null \
    || { tail -20 "$RESULTS/llama-server.log" >&2; exit 1; }
  kill -0 "$SERVER" 2>/dev/null || { log "llama-server exited during the run:"; tail -20 "$RESULTS/llama-server.log" >&2; }
  stop_server
fi

"$PY" - "$RESULTS" "$THREADS" "$LLAMA_SERVER" <<'PY'
import json, os, subprocess, sys
results, threads, llama_server = sys.argv[1:4]
rows = [json.load(open(os.path.join(results, f))) for f in ("modelbay.json", "llama-server.json")
        if os.path.exists(os.path.join(results, f))]
def f0(x): return f"{x:.0f}"
def f1(x): return f"{x:.1f}"
lines = [
    ("1. decode tok/s, 1 stream (256 tokens)", lambda r: f0(r["decode_tok_s"])),
    ("2. aggregate tok/s, 8 streams × 128 tokens", lambda r: f0(r["aggregate_tok_s_8"])),
    ("3. TTFT, ~500-token prompt, no cache hit (ms, median of 5)",
     lambda r: f"{r['ttft_500_ms']:.0f} ({r['ttft_500_prompt_tokens']} tokens)"),
    ("4a. TTFT ~1,000-token chat prompt, miss (ms, median of 3)",
     lambda r: f"{r['ttft_miss_ms']:.0f} ({r['cache_prompt_tokens']} tokens)"),
    ("4b. TTFT same prompt again, hit (ms, median of 3)",
     lambda r: f"{r['ttft_hit_ms']:.1f} (cached {r['cache_hit_cached_tokens']})"),
    ("4c. miss / hit", lambda r: f"{r['cache_ratio']:.1f}×"),
    ("5a. chat decode tok/s, free (median of 3)",
     lambda r: f0(r["free_tok_s"]) if "free_tok_s" in r else "failed"),
    ("5b. chat decode tok/s, json_schema (median of 3)",
     lambda r: (f0(r["constrained_tok_s"]) + ("" if r["constrained_valid_json"] else " (invalid JSON!)"))
     if "constrained_valid_json" in r else "failed (see below)"),
    ("5c. constrained as % of free",
     lambda r: f"{r['constrained_pct']:.0f}%" if "constrained_pct" in r else "—"),
]
print(f"| {threads} threads, SmolLM2-135M Q4_1 | " + " | ".join(r["server"] for r in rows) + " |")
print("|---|" + "---:|" * len(rows))
for label, cell in lines:
    print(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")
print()
for r in rows:
    if "constrained_error" in r:
        print(f"- {r['server']}: json_schema run failed: `{r['constrained_error']}`")
        continue
    print(f"- {r['server']}: tokens streamed: single {r['single_tokens']}, 8 streams "
          f"{r['aggregate_tokens_8']}, free chat {r['free_tokens']}, json_schema "
          f"{r['constrained_tokens']}; json_schema sample: `{r['constrained_sample'][:160]}`")
if os.path.exists(llama_server):
    v = subprocess.run([llama_server, "--version"], capture_output=True, text=True)
    print(f"- llama-server --version: {' '.join((v.stdout + v.stderr).split())}")
PY
