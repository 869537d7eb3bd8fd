#!/usr/bin/env bash
# Installs the Debian packages modelbay needs that this machine lacks: one list, shared by the
# demo (scripts/demo.sh) and CI (.ci/run), so the two cannot drift apart.
#
#   scripts/install-deps.sh          # to build and run: cmake, clang, libclang, pkg-config, curl, python3-venv
#   scripts/install-deps.sh --test   # and what the tests use: promtool, nginx, PostgreSQL, chromium, Node.js
#
# Uses sudo when not root; does nothing when everything is there.
set -euo pipefail

need=()
command -v curl >/dev/null || need+=(curl)
command -v pkg-config >/dev/null || need+=(pkg-config)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# llama.cpp (vendored by llama-cpp-sys-2) is built with cmake; bindgen needs libclang.
command -v cmake >/dev/null || need+=(cmake)
command -v clang >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || need+=(libclang-dev)
if [[ "${1:-}" == "--test" ]]; then
  # promtool (from Debian's prometheus package) checks the /metrics exposition in the tests.
  command -v promtool >/dev/null || need+=(prometheus)
  # The cluster tests put nginx in front of three replicas and run a private PostgreSQL.
  [[ -x /usr/sbin/nginx ]] || need+=(nginx)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  # The console's browser tests: Debian's chromium driven by playwright-core (from npm).
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  command -v npm >/dev/null || need+=(nodejs npm)
fi
if ((${#need[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  echo "installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "modelbay is built with Rust's cargo: install it with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi
