"""Breast-cancer diagnosis with drift monitoring: the model's training rows as reference data,
traffic like them (nothing flagged), then traffic from a scanner whose radius readings come out
three times too large (flagged, on that feature alone). See README.md."""
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import FIXTURES, call, expect, fp32, infer, metric, output, push  # noqa: E402

MODEL = "diagnosis"
REFERENCE = FIXTURES / "breast_cancer.reference.csv"

print("1. publish the classifier with its training rows as reference data")
version = push(MODEL, FIXTURES / "breast_cancer_lr.onnx", promote="true",
               description="Breast cancer (Wisconsin): StandardScaler + LogisticRegression")["version"]
summary, _ = call("PUT", f"/api/v1/models/{MODEL}/versions/{version}/reference",
                  REFERENCE.read_bytes(), content_type="text/csv")
print(f"   version {version}; reference: {summary['rows']} rows x {len(summary['features'])} features")
with open(REFERENCE) as f:
    header, *rows = list(csv.reader(f))
patients = [[float(v) for v in row] for row in rows]


def diagnose(batch):
    """Sends the rows 20 at a time; returns the share predicted malignant (label 0)."""
    malignant = 0
    for start in range(0, len(batch), 20):
        response, _ = infer(f"{MODEL}@{version}", [fp32("input", batch[start:start + 20])])
        malignant += output(response, "label").count(0)
    return malignant / len(batch)


def drift():
    report, _ = call("GET", f"/api/v1/models/{MODEL}/versions/{version}/drift")
    return report, {f["name"]: f for f in report["features"]}


print("2. a day of normal traffic: 200 patients like the training population")
share = diagnose(patients[:200])
report, features = drift()
print(f"   {share:.0%} predicted malignant; window {report['observed_rows']} rows; "
      f"largest PSI {max(f['psi'] for f in features.values()):.3f}")
expect(report["observed_rows"] == 200, "the drift window holds the 200 rows")
expect(not any(f["drifted"] for f in features.values()), "no feature is flagged")

print("3. a recalibrated scanner: 'mean radius' reads 3x too large for the next 200 patients")
radius = header.index("mean radius")
shifted = [row[:radius] + [row[radius] * 3] + row[radius + 1:] for row in patients[200:400]]
shifted_share = diagnose(shifted)
report, features = drift()
flagged = [name for name, f in features.items() if f["drifted"]]
print(f"   {shifted_share:.0%} predicted malignant; window {report['observed_rows']} rows")
for name, f in sorted(features.items(), key=lambda kv: -kv[1]["psi"])[:3]:
    print(f"   {name:>22}: PSI {f['psi']:.3f}, reference mean {f['reference_mean']:.2f}, "
          f"live mean {f['live_mean']:.2f}{'  <- drifted' if f['drifted'] else ''}")
expect(flagged == ["mean radius"], "drift is flagged on 'mean radius' and nothing else")
psi = metric("modelbay_feature_drift_psi", model=MODEL, version=version, feature="mean radius")
expect(abs(psi - features["mean radius"]["psi"]) < 1e-6,
       "/metrics exports the same PSI for Prometheus to alert on")
