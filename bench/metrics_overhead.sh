#!/usr/bin/env bash
# The cost of metrics per request, in CPU instructions counted by valgrind's callgrind (which
# counts the same for the same binary and inputs, whatever else the machine is doing, unlike
# throughput on a shared 2-core machine).
#
# For --metrics true and false: the release server runs under callgrind, the MLP fixture is
# pushed, then a keep-alive client sends N1 and, in a second run, N2 one-row v2 JSON requests.
# (instructions(N2) - instructions(N1)) / (N2 - N1) is the cost of one request, startup and
# load excluded.
#
# Usage: bench/metrics_overhead.sh [N1] [N2]   (default 200 1200)
#   MODELBAY_BIN  binary (default: $CARGO_TARGET_DIR or target, release/modelbay)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
N1="${1:-200}"
N2="${2:-1200}"
BIN="${MODELBAY_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/modelbay}"
command -v valgrind >/dev/null || { echo "valgrind is missing" >&2; exit 1; }
eval "$(scripts/fetch-models.sh)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Prints the instructions the server executed for `requests` requests.
instructions() {
  local metrics="$1" requests="$2"
  rm -rf "$WORK/data" "$WORK"/callgrind.* && mkdir -p "$WORK/data"
  valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --metrics "$metrics" \
    --workers-per-model 1 >"$WORK/stdout" 2>"$WORK/stderr" &
  local pid=$! url=""
  for _ in $(seq 600); do
    url="$(sed -n 's/^modelbay listening on //p' "$WORK/stdout")"
    [[ -n "$url" ]] && break
    sleep 0.1
  done
  [[ -n "$url" ]] || { cat "$WORK/stderr" >&2; exit 1; }
  python3 - "$url" "$requests" <<'PY'
import http.client, json, sys, time, urllib.parse
url, n = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
for _ in range(600):
    conn.request("GET", "/v2/health/ready"); r = conn.getresponse(); r.read()
    if r.status == 200: break
    time.sleep(0.2)
conn.request("POST", "/api/v1/models/mlp/versions", open("fixtures/breast_cancer_mlp.onnx", "rb").read())
r = conn.getresponse(); r.read(); assert r.status == 201, r.status
case = json.load(open("fixtures/breast_cancer_mlp.expected.json"))
body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                               "data": case["inputs"][0]["data"][:30]}]})
for _ in range(n):
    conn.request("POST", "/v2/models/mlp/infer", body, {"Content-Type": "application/json"})
    r = conn.getresponse(); r.read(); assert r.status == 200, r.status
PY
  kill -TERM "$pid"
  wait "$pid" || true
  # awk reads to the end: stopping early would kill callgrind_annotate with SIGPIPE.
  callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

echo "| metrics | instructions per request | relative |"
echo "|---|---|---|"
declare -A PER
for metrics in false true; do
  a="$(instructions "$metrics" "$N1")"
  b="$(instructions "$metrics" "$N2")"
  PER[$metrics]=$(( (b - a) / (N2 - N1) ))
  echo "[bench] metrics $metrics: $a instructions for $N1 requests, $b for $N2" >&2
done
for metrics in false true; do
  awk -v m="$metrics" -v x="${PER[$metrics]}" -v base="${PER[false]}" \
    'BEGIN { printf "| %s | %d | %+.2f%% |\n", m, x, (x - base) / base * 100 }'
done
