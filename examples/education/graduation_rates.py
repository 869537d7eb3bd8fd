"""Graduation rates of US colleges (ISLP College, US News 1995): predict them for colleges the
model never saw, check the server against onnxruntime's own answers, and ask what-if questions
an admissions office would. See README.md."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import FIXTURES, expect, fp32, infer, output, push  # noqa: E402

MODEL = "graduation-rate"
FEATURES = ["Private", "Top10perc", "Top25perc", "Outstate", "Room.Board", "PhD", "S.F.Ratio",
            "perc.alumni", "Expend"]

print("1. publish the graduation-rate regressor (gradient-boosted trees)")
version = push(MODEL, FIXTURES / "college_graduation.onnx", promote="true",
               description="ISLP College: graduation rate (%), GradientBoostingRegressor")["version"]
print(f"   version {version}")

print("2. five colleges from the held-out test split")
expected = json.loads((FIXTURES / "college_graduation.expected.json").read_text())
data = expected["inputs"][0]["data"]
colleges = [data[i:i + len(FEATURES)] for i in range(0, len(data), len(FEATURES))]
response, _ = infer(MODEL, [fp32("input", colleges)])
predicted = output(response, "variable")
print("   " + " ".join(f"{f:>11}" for f in FEATURES) + "  graduation")
for college, rate in zip(colleges, predicted):
    print("   " + " ".join(f"{v:>11g}" for v in college) + f"  {rate:9.1f}%")
reference = expected["outputs"][0]["data"]
expect(all(abs(p - r) < 1e-3 for p, r in zip(predicted, reference)),
       "the server's predictions equal onnxruntime's to 1e-3")

print("3. what if a college attracted more top students? (college 1, Top10perc and Top25perc)")
college = colleges[0]
scenarios = []
for top10 in (10, 25, 40, 60):
    row = list(college)
    row[1], row[2] = top10, min(100, top10 * 2)
    scenarios.append(row)
response, _ = infer(MODEL, [fp32("input", scenarios)])
rates = output(response, "variable")
for row, rate in zip(scenarios, rates):
    print(f"   top 10%: {row[1]:>3g}%, top 25%: {row[2]:>3g}%  ->  {rate:.1f}% graduate")
expect(rates[-1] > rates[0], "stronger intake, higher predicted graduation rate")
