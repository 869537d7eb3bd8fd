#!/usr/bin/env bash
# What security costs on v2 JSON inference, side by side in one run: the same server binary and
# model with a consumer API key vs `--auth off`, and over HTTPS (a self-signed CA made with
# openssl) vs plain HTTP. wrk, 32 connections, breast_cancer_lr with 4 rows (as bench/v2-http.sh).
# The configurations alternate for ROUNDS rounds; the table gives the median and the range.
#
# Usage: bench/auth.sh [ROUNDS] [DURATION_SECS]      (defaults 3 and 10)
# Environment: MODELBAY_BIN (default $CARGO_TARGET_DIR/release/modelbay or target/release/modelbay)
# wrk does not verify certificates, so it speaks HTTPS to the self-signed server as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${1:-3}"
DURATION="${2:-10}"
BIN="${MODELBAY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/modelbay}"
[[ -x "$BIN" ]] || { echo "build first: cargo build --release -p modelbay-cli (or set MODELBAY_BIN)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
eval "$(scripts/fetch-models.sh 2>/dev/null)"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 bench/v2_payload.py body fixtures/breast_cancer_lr.expected.json 4 > "$WORK/body.json"

# A CA and a certificate for 127.0.0.1.
(cd "$WORK" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 1 -subj "/CN=bench CA" 2>/dev/null &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
    -subj "/CN=127.0.0.1" 2>/dev/null &&
  printf 'subjectAltName=IP:127.0.0.1\n' > ext &&
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -out server.pem -extfile ext 2>/dev/null)

# start NAME ARGS...: starts a server in $WORK/NAME, pushes the model, sets $URL and $KEY.
start() {
  local name="$1"; shift
  mkdir -p "$WORK/$name"
  RUST_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 \
    --data-dir "$WORK/$name" "$@" > "$WORK/$name.out" 2>"$WORK/$name.err" &
  PID=$!
  for _ in $(seq 100); do grep -q "modelbay listening on" "$WORK/$name.out" && break; sleep 0.1; done
  URL="$(sed -n 's/^modelbay listening on //p' "$WORK/$name.out")"
  local admin=""
  [[ -f "$WORK/$name/admin.key" ]] && admin="$(cat "$WORK/$name/admin.key")"
  curl -sfk --cacert "$WORK/ca.pem" -H "Authorization: Bearer $admin" -X POST \
    --data-binary @fixtures/breast_cancer_lr.onnx "$URL/api/v1/models/breast-cancer/versions" >/dev/null
  KEY=""
  if [[ -n "$admin" ]]; then
    KEY="$(curl -sfk -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
      -d '{"role":"consumer","label":"bench"}' "$URL/api/v1/keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
  fi
}

run() { # NAME: one wrk run against $URL with $KEY; prints requests/s
  BENCH_BODY="$WORK/body.json" BENCH_KEY="$KEY" wrk -t2 -c32 -d"${DURATION}s" \
    -s bench/post.lua "$URL/v2/models/breast-cancer/infer" > "$WORK/wrk.txt"
  local line; line="$(grep BENCH_RESULT "$WORK/wrk.txt")"
  local req dur status
  req="$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")"
  dur="$(sed 's/.*duration_us=\([0-9]*\).*/\1/' <<<"$line")"
  status="$(sed 's/.*status_errors=\([0-9]*\).*/\1/' <<<"$line")"
  [[ "$status" == 0 ]] || { echo "$1: $status responses were errors" >&2; exit 1; }
  python3 -c "print(round($req / ($dur / 1e6)))"
}

declare -A RESULTS
CONFIGS=("http-auth-off" "http-consumer-key" "https-consumer-key")
for round in $(seq "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    case "$config" in
      http-auth-off) start "$config" --auth off ;;
      http-consumer-key) start "$config" ;;
      https-consumer-key) start "$config" --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key" ;;
    esac
    BENCH_BODY="$WORK/body.json" BENCH_KEY="$KEY" wrk -t2 -c32 -d2s -s bench/post.lua \
      "$URL/v2/models/breast-cancer/infer" >/dev/null  # warm-up
    RESULTS[$config]+="$(run "$config") "
    kill "$PID"; wait "$PID" 2>/dev/null || true
    rm -rf "${WORK:?}/$config"
    echo "round $round $config: ${RESULTS[$config]}" >&2
  done
done

echo "| configuration | requests/s (median) | range | vs auth off |"
echo "|---|---|---|---|"
base=""
for config in "${CONFIGS[@]}"; do
  read -r median low high < <(python3 -c "import statistics,sys; v=sorted(map(int,sys.argv[1:])); print(int(statistics.median(v)), v[0], v[-1])" ${RESULTS[$config]})
  [[ -z "$base" ]] && base="$median"
  ratio="$(python3 -c "print(f'{$median / $base:.3f}')")"
  echo "| $config | $median | $low–$high | $ratio |"
done
