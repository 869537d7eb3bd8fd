#!/usr/bin/env bash
# The typed v2 JSON decoder against the one it replaced, side by side in one run: two server
# binaries (built from the commits before and after), the same model and bodies, `--auth off`,
# wrk with 32 connections. breast_cancer_lr with 4 rows (the v2-http.sh body) and with 256 rows
# (where decoding is most of the work). The binaries alternate for ROUNDS rounds; the table
# gives the median and the range, and after/before.
#
# Usage: bench/json-decoder.sh BEFORE_BIN AFTER_BIN [ROUNDS] [DURATION_SECS]   (defaults 3, 10)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BEFORE="${1:?usage: bench/json-decoder.sh BEFORE_BIN AFTER_BIN [ROUNDS] [DURATION]}"
AFTER="${2:?usage: bench/json-decoder.sh BEFORE_BIN AFTER_BIN [ROUNDS] [DURATION]}"
ROUNDS="${3:-3}"
DURATION="${4:-10}"
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
eval "$(scripts/fetch-models.sh 2>/dev/null)"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
ROWS=(4 256)
# The fixture has 5 rows; larger bodies repeat them.
for rows in "${ROWS[@]}"; do
  python3 - "$rows" > "$WORK/body-$rows.json" <<'PY'
import json, sys
rows = int(sys.argv[1])
doc = json.load(open("fixtures/breast_cancer_lr.expected.json"))
inp = next(t for t in doc["inputs"] if t["name"] == "input")
width = inp["shape"][1]
have = inp["shape"][0]
data = [inp["data"][(r % have) * width + c] for r in range(rows) for c in range(width)]
body = {"inputs": [{"name": "input", "datatype": inp["datatype"], "shape": [rows, width], "data": data}]}
sys.stdout.write(json.dumps(body, separators=(",", ":")))
PY
done

start() { # BIN: starts a server in $WORK/server, pushes the model, sets $URL and $PID
  rm -rf "$WORK/server"; mkdir -p "$WORK/server"
  # A binary from before API keys has no --auth flag (and no auth).
  local auth=()
  "$1" serve --help > "$WORK/help.txt"
  grep -q -- '--auth' "$WORK/help.txt" && auth=(--auth off)
  RUST_LOG=warn "$1" serve "${auth[@]}" --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 \
    --data-dir "$WORK/server" > "$WORK/server.out" 2>"$WORK/server.err" &
  PID=$!
  for _ in $(seq 100); do grep -q "modelbay listening on" "$WORK/server.out" && break; sleep 0.1; done
  URL="$(sed -n 's/^modelbay listening on //p' "$WORK/server.out")"
  curl -sf -X POST --data-binary @fixtures/breast_cancer_lr.onnx \
    "$URL/api/v1/models/breast-cancer/versions" >/dev/null
}

run() { # ROWS SECONDS: one wrk run; prints requests/s
  BENCH_BODY="$WORK/body-$1.json" wrk -t2 -c32 -d"$2s" -s bench/post.lua \
    "$URL/v2/models/breast-cancer/infer" > "$WORK/wrk.txt"
  local line req dur status
  line="$(grep BENCH_RESULT "$WORK/wrk.txt")"
  req="$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")"
  dur="$(sed 's/.*duration_us=\([0-9]*\).*/\1/' <<<"$line")"
  status="$(sed 's/.*status_errors=\([0-9]*\).*/\1/' <<<"$line")"
  [[ "$status" == 0 ]] || { echo "$status responses were errors" >&2; exit 1; }
  python3 -c "print(round($req / ($dur / 1e6)))"
}

declare -A RESULTS
for round in $(seq "$ROUNDS"); do
  for which in before after; do
    bin="$BEFORE"; [[ "$which" == after ]] && bin="$AFTER"
    start "$bin"
    for rows in "${ROWS[@]}"; do
      run "$rows" 2 >/dev/null  # warm-up
      RESULTS[$which-$rows]+="$(run "$rows" "$DURATION") "
      echo "round $round $which $rows rows: ${RESULTS[$which-$rows]}" >&2
    done
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done

median() { python3 -c "import statistics,sys; v=sorted(map(int,sys.argv[1:])); print(int(statistics.median(v)), v[0], v[-1])" "$@"; }
echo "| body | before: requests/s (median, range) | after: requests/s (median, range) | after / before |"
echo "|---|---|---|---|"
for rows in "${ROWS[@]}"; do
  read -r b bl bh < <(median ${RESULTS[before-$rows]})
  read -r a al ah < <(median ${RESULTS[after-$rows]})
  echo "| $rows rows x 30 FP32 | $b ($bl–$bh) | $a ($al–$ah) | $(python3 -c "print(f'{$a / $b:.3f}')") |"
done
