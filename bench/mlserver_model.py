#!/usr/bin/env python3
"""Build the MLServer model repository for bench/v2-http.sh.

Trains exactly the pipeline behind fixtures/breast_cancer_lr.onnx (see
scripts/make_fixtures.py, breast_cancer()): sklearn's breast_cancer data cast to
float32, train_test_split(test_size=0.2, random_state=0, stratify=y),
Pipeline(StandardScaler, LogisticRegression(max_iter=1000)). The code is
replicated rather than imported because make_fixtures.py imports onnx,
skl2onnx, onnxruntime and pandas at module level, which the benchmark venv
does not need.

Writes into OUT_DIR:
  settings.json                      server settings (ports, workers, no access log)
  breast-cancer/model-settings.json  mlserver_sklearn.SKLearnModel, uri ./model.joblib
  breast-cancer/model.joblib         the fitted pipeline

and checks that the fitted pipeline predicts the fixture's expected labels on
the fixture's input rows (so both servers answer with the same labels).

Usage: mlserver_model.py OUT_DIR HTTP_PORT GRPC_PORT PARALLEL_WORKERS METRICS(on|off) METRICS_PORT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parent.parent
EXPECTED = REPO / "fixtures" / "breast_cancer_lr.expected.json"
SEED = 0  # as in scripts/make_fixtures.py
MODEL_NAME = "breast-cancer"


def train() -> Pipeline:
    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    X_tr, _X_te, y_tr, _y_te = train_test_split(
        X, y, test_size=0.2, random_state=SEED, stratify=y
    )
    lr = LogisticRegression(max_iter=1000)
    return Pipeline([("scaler", StandardScaler()), ("clf", lr)]).fit(X_tr, y_tr)


def check(pipe: Pipeline) -> None:
    doc = json.loads(EXPECTED.read_text(encoding="utf-8"))
    inp = next(t for t in doc["inputs"] if t["name"] == "input")
    X = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
    want_label = np.asarray(next(t for t in doc["outputs"] if t["name"] == "label")["data"])
    want_proba = np.asarray(
        next(t for t in doc["outputs"] if t["name"] == "probabilities")["data"]
    ).reshape(len(X), -1)
    got_label = pipe.predict(X)
    got_proba = pipe.predict_proba(X)
    diff = float(np.abs(got_proba - want_proba).max())
    if not np.array_equal(got_label, want_label) or diff > 1e-4:
        raise SystemExit(
            f"retrained pipeline differs from the fixture: labels {got_label.tolist()} "
            f"vs {want_label.tolist()}, max |proba diff| {diff:.3g}"
        )
    print(
        f"[mlserver_model] sklearn {sklearn.__version__}: labels {got_label.tolist()} match "
        f"the fixture, max |proba diff| vs ONNX {diff:.2g}",
        file=sys.stderr,
    )


def main() -> None:
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    http_port, grpc_port, workers = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    metrics_on, metrics_port = sys.argv[5] == "on", int(sys.argv[6])

    pipe = train()
    check(pipe)
    model_dir = out / MODEL_NAME
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipe, model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            },
            indent=2,
        )
        + "\n"
    )
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "parallel_workers": workers,
        # debug=true (MLServer's default) turns on uvicorn's per-request access
        # log; modelbay logs nothing per request at its default level.
        "debug": False,
        "load_models_at_startup": True,
    }
    if metrics_on:
        settings["metrics_port"] = metrics_port
    else:
        settings["metrics_endpoint"] = None
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")


if __name__ == "__main__":
    main()
