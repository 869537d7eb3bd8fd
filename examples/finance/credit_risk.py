"""Credit-default risk scoring: score applicants, explain one decision, then roll a retrained
model out as a 10% canary with a shadow copy, compare the two through /metrics and the shadow
report, promote it, and roll it back. See README.md."""
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import FIXTURES, ApiError, call, expect, fp32, infer, metric, output, push  # noqa: E402

MODEL = "credit-risk"
FEATURES = ["student", "balance", "income"]

# A run cut off half-way may have left its canary policy behind.
try:
    call("DELETE", f"/api/v1/models/{MODEL}/policy")
except ApiError as error:
    if error.status not in (404, 409):  # no such model yet, or no policy
        raise

print("1. publish the logistic-regression scorecard as production, with its reference data")
current = push(MODEL, FIXTURES / "credit_default.onnx", promote="true",
               description="ISLP Default: StandardScaler + LogisticRegression")["version"]
reference = (FIXTURES / "credit_default.reference.csv").read_bytes()
summary, _ = call("PUT", f"/api/v1/models/{MODEL}/versions/{current}/reference", reference,
                  content_type="text/csv")
print(f"   version {current}; reference: {summary['rows']} rows of {summary['features']}")

print("2. score three applicants (student, balance $, income $)")
applicants = [[0, 300, 45000], [0, 1500, 30000], [1, 2400, 15000]]
scores, version = infer(MODEL, [fp32("input", applicants)])
default_risk = output(scores, "probabilities")[1::2]
for applicant, risk in zip(applicants, default_risk):
    print(f"   {applicant}: P(default) = {risk:.4f}")
expect(version == current, f"production (version {current}) answered")
expect(default_risk[0] < default_risk[1] < default_risk[2],
       "risk rises with the balance owed")

print("3. explain the riskiest decision (KernelSHAP on the log-odds of default)")
explanation, _ = call("POST", f"/v2/models/{MODEL}/explain?link=logit",
                      {"inputs": [fp32("input", [applicants[2]])],
                       "outputs": [{"name": "probabilities"}]})
default_column = next(o for o in explanation["rows"][0]["outputs"] if o["index"] == 1)
attributions = dict(zip(explanation["features"], default_column["attributions"]))
for feature, value in sorted(attributions.items(), key=lambda kv: -abs(kv[1])):
    print(f"   {feature:>8}: {value:+.3f}")
print(f"   base log-odds {default_column['base_value']:+.3f} -> {default_column['value']:+.3f}")
expect(explanation["features"] == FEATURES, "the explanation names the reference's features")
expect(max(attributions, key=lambda f: abs(attributions[f])) == "balance",
       "the balance owed drives the decision")
expect(abs(sum(attributions.values()) - (default_column["value"] - default_column["base_value"]))
       < 1e-3, "the attributions add up to the prediction's distance from the base value")

print("4. push the retrained gradient-boosting model (not served yet)")
candidate = push(MODEL, FIXTURES / "credit_default_gbc.onnx",
                 description="ISLP Default: GradientBoostingClassifier, retrained")["version"]
print(f"   version {candidate}")

print("5. canary: 90% production, 10% the candidate, and a shadow copy of every request to it")
policy = {"split": [{"target": "production", "weight": 90}, {"target": candidate, "weight": 10}],
          "shadow": candidate}
call("PUT", f"/api/v1/models/{MODEL}/policy", policy)
with open(FIXTURES / "credit_default.reference.csv") as f:
    traffic = [[float(v) for v in row] for row in list(csv.reader(f))[1:301]]
before = {v: metric("modelbay_requests_total", endpoint="infer", model=MODEL, version=v,
                  outcome="success")
          for v in (current, candidate)}
served = {current: 0, candidate: 0}
for row in traffic:
    _, version = infer(MODEL, [fp32("input", [row])])
    served[version] += 1
counted = {v: metric("modelbay_requests_total", endpoint="infer", model=MODEL, version=v,
                  outcome="success") - before[v]
           for v in (current, candidate)}
print(f"   {len(traffic)} requests: served {served}; /metrics counted {counted}")
expect(10 <= served[candidate] <= 60, "about 10% of the traffic reached the canary")
expect(counted == {v: float(n) for v, n in served.items()},
       "modelbay_requests_total counts the same split per version")
shadow, _ = call("GET", f"/api/v1/models/{MODEL}/shadow")
report = shadow["shadow"]
labels = report["outputs"]["label"]
print(f"   shadow: {report['requests']} copies, {report['errors']} errors, decisions agree "
      f"{labels['agreement_rate']:.1%}, mean latency {report['primary_mean_latency_ms']:.3f} ms "
      f"vs {report['shadow_mean_latency_ms']:.3f} ms")
# Requests the split sent to the candidate itself are not copied to it again.
expect(report["requests"] == served[current] and report["errors"] == 0,
       "the shadow answered a copy of every request production served")
expect(labels["agreement_rate"] >= 0.95, "the two models take the same decision on >= 95%")

print("6. promote the candidate: production moves, the canary policy goes")
call("PUT", f"/api/v1/models/{MODEL}/aliases/production", {"version": candidate})
call("DELETE", f"/api/v1/models/{MODEL}/policy")
versions = {infer(MODEL, [fp32("input", [row])])[1] for row in traffic[:20]}
expect(versions == {candidate}, f"every request is served by version {candidate}")

print("7. roll back")
alias, _ = call("POST", f"/api/v1/models/{MODEL}/aliases/production/rollback")
versions = {infer(MODEL, [fp32("input", [row])])[1] for row in traffic[:20]}
expect(alias["version"] == current and versions == {current},
       f"production is version {current} again and serves every request")

events, _ = call("GET", f"/api/v1/events?model={MODEL}")
print("   audit trail (latest 6):")
for event in events["events"][-6:]:
    who = event["actor"].split(" ")[0]
    print(f"     {event['seq']:>5} {event['at'][:19]} {who} {event['kind']:<15} {event['after']}")
expect([e["kind"] for e in events["events"][-4:]] ==
       ["policy.set", "alias.set", "policy.delete", "alias.rollback"],
       "the audit trail records the canary, the promotion and the rollback")
