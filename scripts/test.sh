#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test (unit and integration, which start
# the real server on 127.0.0.1 port 0) and the check with NVIDIA's unmodified tritonclient.
# Fetches what it needs (ONNX Runtime from PyPI, tritonclient into a virtualenv) on first run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/fetch-models.sh)"
CACHE="${MODELBAY_CACHE:-$PWD/.cache}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== cargo fmt" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked

echo "== tritonclient.http against the real server" >&2
VENV="$CACHE/test-venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import tritonclient.http, numpy' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'tritonclient[http]==2.73.0' 'numpy<3'
fi
"$VENV/bin/python" tests/tritonclient_check.py "$TARGET/debug/modelbay"
echo "== all tests passed" >&2
