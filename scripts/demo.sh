#!/usr/bin/env bash
# Quick start: fetch ONNX Runtime and the models, build modelbay, start it on 127.0.0.1:8080 with the
# registry in ./modelbay-data, push the demo models (once) and keep serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/fetch-models.sh)"
cargo build --release --locked -p modelbay-cli
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/modelbay"
LISTEN="${MODELBAY_LISTEN:-127.0.0.1:8080}"
export MODELBAY_SERVER="http://$LISTEN"

DATA_DIR="${MODELBAY_DATA_DIR:-./modelbay-data}"
"$BIN" serve --listen "$LISTEN" --data-dir "$DATA_DIR" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER' INT TERM
for _ in $(seq 100); do
  curl -sf "$MODELBAY_SERVER/v2/health/ready" >/dev/null && break
  sleep 0.1
done
# The first start wrote an admin key (only the key, readable by its owner only); the client
# commands and curl below send it.
export MODELBAY_API_KEY="${MODELBAY_API_KEY:-$(cat "$DATA_DIR/admin.key")}"
AUTH="Authorization: Bearer $MODELBAY_API_KEY"

push_once() { # name file description
  if ! curl -sf -H "$AUTH" "$MODELBAY_SERVER/api/v1/models/$1/versions" >/dev/null; then
    "$BIN" push "$1" "fixtures/$2" --description "$3" --label demo=true
  fi
}
push_once breast-cancer breast_cancer_lr.onnx "Breast cancer diagnosis: StandardScaler + LogisticRegression"
push_once breast-cancer-rf breast_cancer_rf.onnx "Breast cancer diagnosis: RandomForest"
push_once diabetes diabetes_gbr.onnx "Diabetes progression: GradientBoosting regressor"
push_once credit-default credit_default.onnx "Credit-card default (ISLP Default data): LogisticRegression"
push_once german-credit german_credit.onnx "German credit risk (UCI): one-hot + LogisticRegression"
if ! curl -sf -H "$AUTH" "$MODELBAY_SERVER/api/v1/models/chat/versions" >/dev/null; then
  "$BIN" push chat "$MODELBAY_SMOLLM2" --description "SmolLM2-135M-Instruct, Q4_1 GGUF" --label demo=true
fi
if ! curl -sf -H "$AUTH" "$MODELBAY_SERVER/api/v1/models/minilm/versions" >/dev/null; then
  "$BIN" push minilm "$MODELBAY_MINILM_ONNX" --description "all-MiniLM-L6-v2 sentence embeddings (ONNX)" \
    --label demo=true
fi
"$BIN" models

cat <<MSG

modelbay is serving on $MODELBAY_SERVER. Every request needs a key; the admin key is in
$DATA_DIR/admin.key (make narrower ones with: modelbay keys create --role consumer --label app).
Try:

  export MODELBAY_API_KEY=\$(cat $DATA_DIR/admin.key)
  curl -s $MODELBAY_SERVER/v2/models/credit-default/infer -H "Authorization: Bearer \$MODELBAY_API_KEY" \\
    -d '{"inputs":[{"name":"input","datatype":"FP32","shape":[2,3],"data":[[0,2500,30000],[1,300,15000]]}]}'

  curl -s $MODELBAY_SERVER/v1/chat/completions -H "Authorization: Bearer \$MODELBAY_API_KEY" \
    -d '{"model":"chat","messages":[{"role":"user","content":"What is the capital of France?"}]}'

  curl -s $MODELBAY_SERVER/v1/embeddings -H "Authorization: Bearer \$MODELBAY_API_KEY" -d '{"model":"minilm","input":["red running shoes","trail sneakers"]}'

Ctrl-C stops the server.
MSG
wait $SERVER
