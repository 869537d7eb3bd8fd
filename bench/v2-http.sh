#!/usr/bin/env bash
# Side-by-side HTTP load benchmark of Open Inference Protocol v2 JSON inference:
# modelbay vs Seldon MLServer (mlserver-sklearn), same model on both sides.
#
# Model: fixtures/breast_cancer_lr.onnx (StandardScaler + LogisticRegression on
# sklearn's breast_cancer) for modelbay; MLServer gets the identical sklearn
# pipeline, retrained with the same data/split/seed and saved with joblib
# (bench/mlserver_model.py checks it predicts the fixture's labels).
# Request: POST /v2/models/breast-cancer/infer, the first 4 rows of
# fixtures/breast_cancer_lr.expected.json as input "input" FP32 [4,30].
#
# The servers run one at a time (the other is stopped), each on the same
# machine as wrk: server and load generator share the CPUs.
#
# Usage:
#   bench/v2-http.sh [--only modelbay|mlserver] [--build] [--duration SECS]
#                    [--warmup SECS] [--connections "1 8 32"] [--results-dir DIR]
#
#   --only S         benchmark one server only (default: both)
#   --build          run `cargo build --release -p modelbay-cli` first (it is
#                    also run when the modelbay binary is missing)
#   --duration N     seconds per measured wrk run (default 10; BENCH_DURATION)
#   --warmup N       seconds of discarded wrk warm-up before each run (default 3; BENCH_WARMUP)
#   --connections L  space-separated concurrency levels (default "1 8 32"; BENCH_CONNECTIONS)
#   --results-dir D  keep server logs, raw wrk output and the table in D
#                    (default: a temp dir, deleted on exit)
#
# Environment:
#   MODELBAY_BIN               modelbay binary (default target/release/modelbay,
#                              or $CARGO_TARGET_DIR/release/modelbay)
#   MLSERVER_PARALLEL_WORKERS  MLServer parallel_workers (default 1 = MLServer's default)
#   MLSERVER_METRICS           on|off: MLServer Prometheus metrics (default off; modelbay has none)
#   BENCH_VENV                 MLServer virtualenv (default .cache/bench-venv)
#   PYTHON                     interpreter used to create the venv (default python3)
#   RUST_LOG                   passed to modelbay (default: modelbay's own, info)
#
# Markdown results go to stdout; progress goes to stderr. Exit status is
# non-zero if a server fails its correctness check or a run had errors
# (HTTP status >= 400, as wrk counts them, or socket errors/timeouts); the table is still printed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="$REPO_ROOT/bench"
cd "$REPO_ROOT"

MODEL_NAME="breast-cancer"
FIXTURE_ONNX="$REPO_ROOT/fixtures/breast_cancer_lr.onnx"
FIXTURE_EXPECTED="$REPO_ROOT/fixtures/breast_cancer_lr.expected.json"
ROWS=4

ONLY="both"
BUILD=0
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-3}"
CONNECTIONS="${BENCH_CONNECTIONS:-1 8 32}"
RESULTS_DIR=""
VENV="${BENCH_VENV:-$REPO_ROOT/.cache/bench-venv}"
PYTHON="${PYTHON:-python3}"
MLSERVER_WORKERS="${MLSERVER_PARALLEL_WORKERS:-1}"
MLSERVER_METRICS="${MLSERVER_METRICS:-off}"
if [[ -n "${MODELBAY_BIN:-}" ]]; then
  MODELBAY_BIN_SET=1
else
  MODELBAY_BIN_SET=0
  MODELBAY_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/modelbay"
fi

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --only) ONLY="${2:?--only needs modelbay or mlserver}"; shift 2 ;;
    --only=*) ONLY="${1#*=}"; shift ;;
    --build) BUILD=1; shift ;;
    --duration) DURATION="${2:?}"; shift 2 ;;
    --duration=*) DURATION="${1#*=}"; shift ;;
    --warmup) WARMUP="${2:?}"; shift 2 ;;
    --warmup=*) WARMUP="${1#*=}"; shift ;;
    --connections) CONNECTIONS="${2:?}"; shift 2 ;;
    --connections=*) CONNECTIONS="${1#*=}"; shift ;;
    --results-dir) RESULTS_DIR="${2:?}"; shift 2 ;;
    --results-dir=*) RESULTS_DIR="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$ONLY" in
  both) SERVERS=(modelbay mlserver) ;;
  modelbay|mlserver) SERVERS=("$ONLY") ;;
  *) die "--only must be modelbay or mlserver (got '$ONLY')" ;;
esac
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive integer (seconds)"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer (seconds)"
for c in $CONNECTIONS; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "bad concurrency '$c'"; done
[[ "$MLSERVER_WORKERS" =~ ^[0-9]+$ ]] || die "MLSERVER_PARALLEL_WORKERS must be an integer"
case "$MLSERVER_METRICS" in on|off) ;; *) die "MLSERVER_METRICS must be on or off" ;; esac

# ---------------------------------------------------------------------------
# work dir and cleanup
# ---------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/modelbay-bench.XXXXXX")"
if [[ -n "$RESULTS_DIR" ]]; then
  mkdir -p "$RESULTS_DIR"
  RESULTS_DIR="$(cd "$RESULTS_DIR" && pwd)"
  OUTDIR="$RESULTS_DIR"
else
  OUTDIR="$WORK"
fi
SERVER_PID=""   # the one server running now (leader of its own process group)
SERVER_NAME=""

stop_server() {
  local pid="$SERVER_PID" name="$SERVER_NAME"
  SERVER_PID=""
  [[ -n "$pid" ]] || return 0
  local i
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    # SIGTERM to the main process only: MLServer shuts its worker pool down
    # itself, and hangs if the workers get the signal directly. (After a load
    # run MLServer 1.7.1 still often hangs after "gRPC server shutdown
    # complete"; the process-group signals below end it.)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  # started under setsid, so pid is also its process-group id: whatever is
  # left of the group (worker processes, or the server itself if it ignored
  # SIGTERM for 10s) gets SIGTERM, then SIGKILL.
  if kill -0 -- "-$pid" 2>/dev/null; then
    log "$name (group $pid) still running after SIGTERM; signalling the process group"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  rm -rf "$WORK"
  [[ -z "$RESULTS_DIR" ]] || log "results kept in $RESULTS_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# start_server NAME LOGBASE CMD...: runs CMD in a new session (own process group)
start_server() {
  SERVER_NAME="$1"; local base="$2"; shift 2
  setsid "$@" >"$base.out" 2>"$base.err" </dev/null &
  SERVER_PID=$!
  sleep 0.2
  local pgid
  pgid="$(ps -o pgid= -p "$SERVER_PID" 2>/dev/null | tr -d ' ' || true)"
  if [[ -n "$pgid" && "$pgid" != "$SERVER_PID" ]]; then
    log "warning: $SERVER_NAME is not its own process group leader; cleanup will signal pid $SERVER_PID only"
  fi
}

server_alive() { [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; }

dump_logs() {
  local base="$1"
  log "---- last lines of $base.err ----"; tail -n 30 "$base.err" >&2 2>/dev/null || true
  log "---- last lines of $base.out ----"; tail -n 10 "$base.out" >&2 2>/dev/null || true
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http_200 URL TIMEOUT_SECS LOGBASE
wait_http_200() {
  local url="$1" timeout="$2" base="$3" code deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    server_alive || { dump_logs "$base"; die "$SERVER_NAME exited during start-up"; }
    # MLServer keeps running when uvicorn cannot bind its HTTP port
    if grep -qi 'address already in use' "$base.err" "$base.out" 2>/dev/null; then
      dump_logs "$base"; die "$SERVER_NAME could not bind a port (address already in use)"
    fi
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)"
    [[ "$code" == 200 ]] && return 0
    sleep 0.5
  done
  dump_logs "$base"
  die "$SERVER_NAME: $url did not answer 200 within ${timeout}s (last status: ${code:-none})"
}

# ---------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  log "wrk not found; installing it with apt-get"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "wrk is missing and sudo is not available: install wrk (apt-get install wrk)"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "wrk is missing and apt-get is not available: install wrk by hand"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2; then
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >&2
  fi
  command -v wrk >/dev/null 2>&1 || die "wrk installation failed"
}

ensure_venv() {
  local stamp="$VENV/.bench-stamp" want
  want="$(cat "$BENCH_DIR/mlserver-requirements.txt" "$BENCH_DIR/mlserver-constraints.txt" | sha256sum | cut -d' ' -f1)"
  if [[ -x "$VENV/bin/mlserver" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && "$VENV/bin/python" -c 'import mlserver, mlserver_sklearn, sklearn, joblib' 2>/dev/null; then
    log "MLServer venv up to date: $VENV"
    return 0
  fi
  log "installing MLServer into $VENV (pip, a minute or two)"
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV" || die "cannot create venv $VENV (python3-venv missing?)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$BENCH_DIR/mlserver-requirements.txt" -c "$BENCH_DIR/mlserver-constraints.txt" >&2 \
    || die "pip install of MLServer failed"
  "$VENV/bin/python" -c 'import mlserver, mlserver_sklearn' || die "MLServer does not import after install"
  echo "$want" >"$stamp"
}

ensure_modelbay() {
  if [[ "$BUILD" == 1 || ! -x "$MODELBAY_BIN" ]]; then
    if [[ "$MODELBAY_BIN_SET" == 1 && "$BUILD" == 0 ]]; then
      die "MODELBAY_BIN=$MODELBAY_BIN is not an executable file"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found; cannot build $MODELBAY_BIN"
    log "building modelbay: cargo build --release -p modelbay-cli"
    (cd "$REPO_ROOT" && cargo build --release -p modelbay-cli >&2) || die "cargo build failed"
    [[ -x "$MODELBAY_BIN" ]] || die "build finished but $MODELBAY_BIN does not exist (CARGO_TARGET_DIR? set MODELBAY_BIN)"
  fi
  local newer
  newer="$(cd "$REPO_ROOT" && find crates Cargo.toml Cargo.lock -newer "$MODELBAY_BIN" -type f -print -quit 2>/dev/null || true)"
  [[ -z "$newer" ]] || log "WARNING: $MODELBAY_BIN is older than $newer; pass --build to benchmark the current sources"
  if [[ -z "${ORT_DYLIB_PATH:-}" || ! -e "${ORT_DYLIB_PATH:-}" ]]; then
    local exports
    exports="$("$REPO_ROOT/scripts/fetch-models.sh")" || die "scripts/fetch-models.sh failed"
    eval "$exports"
  fi
  [[ -e "${ORT_DYLIB_PATH:-}" ]] || die "ORT_DYLIB_PATH not set by scripts/fetch-models.sh"
}

# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------
BASE_URL=""

start_modelbay() {
  local base="$OUTDIR/modelbay" url deadline
  mkdir -p "$WORK/modelbay-data"
  log "starting modelbay ($MODELBAY_BIN)"
  start_server modelbay "$base" env ORT_DYLIB_PATH="$ORT_DYLIB_PATH" \
    "$MODELBAY_BIN" serve --data-dir "$WORK/modelbay-data" --listen 127.0.0.1:0
  deadline=$((SECONDS + 60)); url=""
  while ((SECONDS < deadline)); do
    url="$(sed -n 's/^modelbay listening on \(http:\/\/[^ ]*\).*$/\1/p' "$base.out" | head -n1)"
    [[ -n "$url" ]] && break
    server_alive || { dump_logs "$base"; die "modelbay exited during start-up"; }
    sleep 0.2
  done
  [[ -n "$url" ]] || { dump_logs "$base"; die "modelbay did not print its address within 60s"; }
  BASE_URL="$url"
  log "modelbay listening on $BASE_URL; pushing $FIXTURE_ONNX"
  local code
  code="$(curl -sS -o "$WORK/push.json" -w '%{http_code}' --max-time 60 \
    -H 'Content-Type: application/octet-stream' --data-binary @"$FIXTURE_ONNX" \
    "$BASE_URL/api/v1/models/$MODEL_NAME/versions")" || die "model push failed (curl)"
  [[ "$code" == 201 ]] || { cat "$WORK/push.json" >&2; dump_logs "$base"; die "model push answered HTTP $code, expected 201"; }
  wait_http_200 "$BASE_URL/v2/models/$MODEL_NAME/ready" 60 "$base"
}

start_mlserver() {
  local base="$OUTDIR/mlserver" repo="$WORK/mlserver-models"
  local http_port grpc_port metrics_port
  http_port="$(free_port)"; grpc_port="$(free_port)"; metrics_port="$(free_port)"
  while [[ "$grpc_port" == "$http_port" ]]; do grpc_port="$(free_port)"; done
  while [[ "$metrics_port" == "$http_port" || "$metrics_port" == "$grpc_port" ]]; do metrics_port="$(free_port)"; done
  mkdir -p "$repo"
  "$VENV/bin/python" "$BENCH_DIR/mlserver_model.py" "$repo" "$http_port" "$grpc_port" \
    "$MLSERVER_WORKERS" "$MLSERVER_METRICS" "$metrics_port" || die "building the MLServer model failed"
  cp "$repo/settings.json" "$OUTDIR/mlserver-settings.json" 2>/dev/null || true
  log "starting MLServer (http $http_port, grpc $grpc_port, parallel_workers $MLSERVER_WORKERS, metrics $MLSERVER_METRICS)"
  # run from the repo dir so .metrics/.envs scratch dirs land in the temp dir
  start_server mlserver "$base" bash -c 'cd "$1" && exec "$2" start .' _ "$repo" "$VENV/bin/mlserver"
  BASE_URL="http://127.0.0.1:$http_port"
  wait_http_200 "$BASE_URL/v2/models/$MODEL_NAME/ready" 180 "$base"
  log "MLServer ready on $BASE_URL"
}

# verify NAME: one request, must be 200 with the expected labels
verify() {
  local name="$1" code
  code="$(curl -sS -o "$WORK/$name-verify.json" -w '%{http_code}' --max-time 30 \
    -H 'Content-Type: application/json' --data-binary @"$WORK/body.json" \
    "$BASE_URL/v2/models/$MODEL_NAME/infer")" || die "$name: verification request failed (curl)"
  cp "$WORK/$name-verify.json" "$OUTDIR/$name-response.json" 2>/dev/null || true
  if [[ "$code" != 200 ]]; then
    head -c 2000 "$WORK/$name-verify.json" >&2; echo >&2
    die "$name: verification request answered HTTP $code"
  fi
  local msg
  msg="$("$PYTHON" "$BENCH_DIR/v2_payload.py" check "$FIXTURE_EXPECTED" "$ROWS" "$WORK/$name-verify.json" 2>&1)" \
    || { head -c 2000 "$WORK/$name-verify.json" >&2; echo >&2; die "$name: wrong answer: $msg"; }
  log "$name answers correctly: $msg"
}

# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------
declare -A RPS P50 P99 ERRS
ANY_ERRORS=0

run_wrk() { # run_wrk CONNECTIONS DURATION OUTFILE
  local c="$1" d="$2" out="$3" threads=2
  ((c == 1)) && threads=1
  BENCH_BODY="$WORK/body.json" wrk -t"$threads" -c"$c" -d"${d}s" --timeout 10s --latency \
    -s "$BENCH_DIR/post.lua" "$BASE_URL/v2/models/$MODEL_NAME/infer" >"$out" 2>&1
}

bench_server() {
  local name="$1" c out line
  for c in $CONNECTIONS; do
    if ((WARMUP > 0)); then
      log "$name c=$c: warm-up ${WARMUP}s"
      run_wrk "$c" "$WARMUP" "$OUTDIR/wrk-$name-c$c-warmup.txt" || log "warning: warm-up wrk exited non-zero"
    fi
    log "$name c=$c: measuring ${DURATION}s"
    out="$OUTDIR/wrk-$name-c$c.txt"
    run_wrk "$c" "$DURATION" "$out" || { cat "$out" >&2; die "wrk failed for $name c=$c"; }
    server_alive || { cat "$out" >&2; dump_logs "$OUTDIR/$name"; die "$name died during the c=$c run"; }
    line="$(grep '^BENCH_RESULT ' "$out" | tail -n1)"
    [[ -n "$line" ]] || { cat "$out" >&2; die "no BENCH_RESULT line in wrk output for $name c=$c"; }
    local -A r=()
    local kv
    for kv in ${line#BENCH_RESULT }; do r[${kv%%=*}]="${kv#*=}"; done
    local errors=$(( r[status_errors] + r[connect] + r[read] + r[write] + r[timeout] ))
    RPS[$name,$c]="$(awk -v n="${r[requests]}" -v us="${r[duration_us]}" 'BEGIN{printf "%.1f", n/(us/1e6)}')"
    P50[$name,$c]="$(awk -v v="${r[p50_us]}" 'BEGIN{printf "%.2f", v/1000}')"
    P99[$name,$c]="$(awk -v v="${r[p99_us]}" 'BEGIN{printf "%.2f", v/1000}')"
    if ((errors > 0)); then
      ANY_ERRORS=1
      ERRS[$name,$c]="**$errors** (http>=400 ${r[status_errors]}, connect ${r[connect]}, read ${r[read]}, write ${r[write]}, timeout ${r[timeout]}) ⚠"
      log "WARNING: $name c=$c had $errors errors out of ${r[requests]} requests"
    else
      ERRS[$name,$c]="0"
    fi
    log "$name c=$c: ${RPS[$name,$c]} req/s, p50 ${P50[$name,$c]} ms, p99 ${P99[$name,$c]} ms, errors ${ERRS[$name,$c]}"
  done
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
command -v curl >/dev/null 2>&1 || die "curl is required"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is required"
command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is required"
ensure_wrk
[[ -f "$FIXTURE_ONNX" && -f "$FIXTURE_EXPECTED" ]] || die "fixtures missing: $FIXTURE_ONNX / $FIXTURE_EXPECTED"
"$PYTHON" "$BENCH_DIR/v2_payload.py" body "$FIXTURE_EXPECTED" "$ROWS" >"$WORK/body.json"
cp "$WORK/body.json" "$OUTDIR/request.json" 2>/dev/null || true
EXPECTED_LABELS="$("$PYTHON" "$BENCH_DIR/v2_payload.py" labels "$FIXTURE_EXPECTED" "$ROWS")"
log "request: $ROWS rows x 30 FP32 ($(wc -c <"$WORK/body.json") bytes), expected labels: $EXPECTED_LABELS"

for s in "${SERVERS[@]}"; do
  case "$s" in
    modelbay) ensure_modelbay ;;
    mlserver) ensure_venv ;;
  esac
done

MODELBAY_VERSION="n/a"; MLSERVER_VERSION="n/a"
for s in "${SERVERS[@]}"; do
  case "$s" in
    modelbay)
      MODELBAY_VERSION="$("$MODELBAY_BIN" --version 2>/dev/null | head -n1 || true)"
      MODELBAY_VERSION="${MODELBAY_VERSION:-modelbay}, git $(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
      start_modelbay ;;
    mlserver)
      MLSERVER_VERSION="$("$VENV/bin/python" -c 'from importlib.metadata import version as v; print(", ".join(f"{p} {v(p)}" for p in ("mlserver", "mlserver-sklearn", "scikit-learn", "numpy", "uvloop")))' 2>/dev/null || echo unknown)"
      start_mlserver ;;
  esac
  verify "$s"
  bench_server "$s"
  stop_server
done

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
CPU_MODEL="$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
report() {
  echo "## Open Inference Protocol v2 JSON over HTTP: modelbay vs MLServer"
  echo
  echo "- Model: breast_cancer StandardScaler + LogisticRegression (modelbay: \`fixtures/breast_cancer_lr.onnx\`; MLServer: same sklearn pipeline retrained identically, joblib, \`mlserver_sklearn.SKLearnModel\`, \`predict\` output)"
  echo "- Request: \`POST /v2/models/$MODEL_NAME/infer\`, input \`input\` FP32 [$ROWS,30] ($(wc -c <"$WORK/body.json") bytes JSON); both servers verified to answer 200 with labels [$EXPECTED_LABELS] before load"
  echo "- Load: wrk, ${DURATION}s per run after a ${WARMUP}s warm-up, 1 thread at c=1, 2 threads otherwise, keep-alive connections, timeout 10s"
  echo "- Machine: $(nproc) usable CPUs (nproc; $(nproc --all) installed), ${CPU_MODEL:-unknown CPU}, $(uname -sr)"
  echo "- **Server and wrk share the same CPUs** (no pinning); only one server runs at a time"
  local mb_env
  mb_env="$(env | grep -E '^(MODELBAY_[A-Z_]+|RUST_LOG)=' | grep -vE '^MODELBAY_(BIN|CACHE)=' | sort | tr '\n' ' ' || true)"
  echo "- modelbay: ${MODELBAY_VERSION}; settings: ${mb_env:-defaults (workers_per_model = nproc, intra_op_threads 1, log level info)}"
  echo "- MLServer: ${MLSERVER_VERSION}; parallel_workers=$MLSERVER_WORKERS$([[ $MLSERVER_WORKERS == 1 ]] && echo ' (MLServer default)'), access log off (debug=false), metrics $MLSERVER_METRICS"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "| server | concurrency | req/s | p50 ms | p99 ms | errors |"
  echo "|---|---:|---:|---:|---:|---|"
  local s c
  for s in "${SERVERS[@]}"; do
    for c in $CONNECTIONS; do
      echo "| $s | $c | ${RPS[$s,$c]} | ${P50[$s,$c]} | ${P99[$s,$c]} | ${ERRS[$s,$c]} |"
    done
  done
  if [[ ${#SERVERS[@]} == 2 ]]; then
    echo
    echo "| concurrency | req/s modelbay/MLServer | p50 modelbay/MLServer | p99 modelbay/MLServer |"
    echo "|---:|---:|---:|---:|"
    for c in $CONNECTIONS; do
      awk -v c="$c" -v a="${RPS[modelbay,$c]}" -v b="${RPS[mlserver,$c]}" \
          -v p="${P50[modelbay,$c]}" -v q="${P50[mlserver,$c]}" \
          -v x="${P99[modelbay,$c]}" -v y="${P99[mlserver,$c]}" '
        function ratio(n, d) { return (d > 0) ? sprintf("%.2fx", n / d) : "n/a" }
        BEGIN { printf "| %s | %s | %s | %s |\n", c, ratio(a, b), ratio(p, q), ratio(x, y) }'
    done
  fi
  if ((ANY_ERRORS)); then
    echo
    echo "**WARNING: some runs had errors (see the errors column); their figures are not comparable.**"
  fi
}
report | tee "$OUTDIR/results.md"
if ((ANY_ERRORS)); then
  exit 2
fi
